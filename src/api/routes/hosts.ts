import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { CreateHostBody, HostSchema, UpdateHostBody } from '../../core/schemas/host-schema.js';
import { Page, PlainListQuery } from '../../core/models.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { SECRET_ANSWER } from '../idempotency.js';
import { RefParams } from '../schemas.js';

const EnrollTokenBody = Type.Object({
  ttlMs: Type.Optional(Type.Integer({ minimum: 60_000, maximum: 30 * 24 * 3_600_000, description: 'lifetime of the token in ms (default: nodeEnrollTtlMs)' })),
}, { additionalProperties: false });
const EnrollTokenAnswer = Type.Object({
  host: Type.String(), token: Type.String({ description: 'one-time agent enrollment token (shown once)' }), expiresAt: Type.String(),
  apiFingerprint: Type.Union([Type.String(), Type.Null()], { description: 'sha256 pin of the API certificate the token carries; null for plain HTTP' }),
});
// `token` optional in the schema so that a missing one is the same 401 ENROLLMENT_INVALID as a wrong one.
const CredentialBody = Type.Object({ token: Type.Optional(Type.String({ maxLength: 512 })) }, { additionalProperties: false });
const CredentialAnswer = Type.Object({ host: Type.String(), credential: Type.String({ description: 'the agent\'s own API credential (shown once; only its hash is kept)' }) });

/**
 * `POST /v1/hosts/{name}/agent-credential`: an agent exchanges its one-time enrollment token for
 * its own credential. Registered outside the bearer-auth scope: the enrollment token in the body is
 * the only authentication, and every refusal is the same ENROLLMENT_INVALID.
 */
export function agentEnrollmentRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    app.post('/hosts/:ref/agent-credential', { config: { permission: 'public' }, schema: { tags: ['agents'], summary: 'Exchange a one-time agent enrollment token for the agent\'s own credential (single use; ref is the host name)', security: [], params: RefParams, body: CredentialBody, response: { 200: CredentialAnswer, ...errorResponses('ENROLLMENT_INVALID') } } }, async (req) => deps.agentCredentials.exchange(req.params.ref, req.body.token ?? ''));
  };
}

/** /v1/hosts: the hosts that volumes are granted to. */
export function hostRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['hosts'];
    app.post('/hosts', { config: { permission: 'system.admin' }, schema: { tags, summary: 'Register a host (name, initiator name, addresses, zone)', body: CreateHostBody, response: { 201: HostSchema, ...errorResponses('INVALID_NAME', 'NAME_TAKEN') } } }, async (req, reply) => {
      const host = await deps.hosts.create(req.body, req.principal.actor, req.principal.tenantId, req.idempotencyClaim?.key);
      return reply.status(201).send(host);
    });
    app.post('/hosts/:ref/enroll-token', { config: { ...SECRET_ANSWER, permission: 'system.admin' }, schema: { tags, summary: 'Issue a one-time enrollment token for the host\'s agent (replaces an unused one; the agent\'s credential is replaced when it is used)', params: RefParams, body: Type.Optional(EnrollTokenBody), response: { 200: EnrollTokenAnswer, ...errorResponses('HOST_NOT_FOUND') } } }, async (req) => deps.agentCredentials.issue(req.params.ref, req.principal.actor, req.body?.ttlMs));
    app.get('/hosts', { config: { permission: 'system.admin' }, schema: { tags, summary: 'List hosts (by name; paginated)', querystring: PlainListQuery, response: { 200: Page(HostSchema), ...errorResponses() } } }, async (req) => deps.hosts.list(req.query));
    app.get('/hosts/:ref', { config: { permission: 'system.admin' }, schema: { tags, summary: 'Show a host', params: RefParams, response: { 200: HostSchema, ...errorResponses('HOST_NOT_FOUND') } } }, async (req) => deps.hosts.get(req.params.ref));
    app.patch('/hosts/:ref', { config: { permission: 'system.admin' }, schema: { tags, summary: 'Change a host\'s initiator name, addresses or zone', params: RefParams, body: UpdateHostBody, response: { 200: HostSchema, ...errorResponses('HOST_NOT_FOUND') } } }, async (req) => deps.hosts.update(req.params.ref, req.body, req.principal.actor));
    app.delete('/hosts/:ref', { config: { permission: 'system.admin' }, schema: { tags, summary: 'Delete a host that has no access left', params: RefParams, response: { 204: Type.Null(), ...errorResponses('HOST_NOT_FOUND', 'HOST_IN_USE') } } }, async (req, reply) => {
      await deps.hosts.delete(req.params.ref, req.principal.actor);
      return reply.status(204).send(null);
    });
  };
}
