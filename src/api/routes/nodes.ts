import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { StowageError } from '../../core/errors.js';
import { Page, PlainListQuery } from '../../core/models.js';
import { CreateNodeBody, EnrollNodeBody, NodeEnrolledSchema, NodeEnrollmentSchema, NodeSchema } from '../../core/schemas/node-schema.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { SECRET_ANSWER } from '../idempotency.js';
import { RefParams } from '../schemas.js';

/** Body of POST /v1/nodes/{ref}/rekey. */
const RekeyBody = Type.Object({
  enrollTtlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 7 * 24 * 3600, description: 'how long the new token is valid (default 3600)' })),
}, { additionalProperties: false });

/** Largest enroll request: a token and one certificate. */
const ENROLL_BODY_LIMIT_BYTES = 32 * 1024;
/** Enrollment attempts one client address may make per window (a token has 192 random bits; this only keeps the log quiet). */
const ENROLL_ATTEMPTS_PER_WINDOW = 30;
const ENROLL_WINDOW_MS = 60_000;

/** /v1/nodes: storage nodes (create with an enrollment token, list, show, drain, resume, rekey, revoke, delete). */
export function nodeRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['nodes'];
    app.post('/nodes', {
      config: { ...SECRET_ANSWER, permission: 'system.admin' },
      schema: { tags, summary: 'Register a storage node; answers its one-time enrollment token (shown once)', body: CreateNodeBody, response: { 201: NodeEnrollmentSchema, ...errorResponses('INVALID_NAME', 'NAME_TAKEN', 'VALIDATION_FAILED') } },
    }, async (req, reply) => {
      const answer = await deps.nodes.create(req.body, req.principal.actor, req.idempotencyClaim?.key);
      return reply.status(201).header('cache-control', 'no-store').send(answer);
    });
    app.get('/nodes', { config: { permission: 'system.admin' }, schema: { tags, summary: 'List storage nodes (by name; paginated)', querystring: PlainListQuery, response: { 200: Page(NodeSchema), ...errorResponses() } } }, async (req) => deps.nodes.list(req.query));
    app.get('/nodes/:ref', { config: { permission: 'system.admin' }, schema: { tags, summary: 'Show a storage node', params: RefParams, response: { 200: NodeSchema, ...errorResponses('NODE_NOT_FOUND') } } }, async (req) => deps.nodes.get(req.params.ref));
    app.post('/nodes/:ref/drain', { config: { permission: 'system.admin' }, schema: { tags, summary: 'Drain a node: placement avoids it; what it holds keeps serving', params: RefParams, response: { 200: NodeSchema, ...errorResponses('NODE_NOT_FOUND') } } }, async (req) => deps.nodes.drain(req.params.ref, req.principal.actor));
    app.post('/nodes/:ref/resume', { config: { permission: 'system.admin' }, schema: { tags, summary: 'Undo a drain', params: RefParams, response: { 200: NodeSchema, ...errorResponses('NODE_NOT_FOUND') } } }, async (req) => deps.nodes.resume(req.params.ref, req.principal.actor));
    app.post('/nodes/:ref/rekey', {
      config: { ...SECRET_ANSWER, permission: 'system.admin' },
      schema: { tags, summary: 'A new one-time enrollment token; the current key stays pinned until the node enrolls with it', params: RefParams, body: Type.Optional(RekeyBody), response: { 200: NodeEnrollmentSchema, ...errorResponses('NODE_NOT_FOUND') } },
    }, async (req, reply) => reply.header('cache-control', 'no-store').send(await deps.nodes.rekey(req.params.ref, req.principal.actor, req.body?.enrollTtlSeconds)));
    app.post('/nodes/:ref/revoke', { config: { permission: 'system.admin' }, schema: { tags, summary: 'Revoke a node\'s key: it is no longer called until it enrolls again', params: RefParams, response: { 200: NodeSchema, ...errorResponses('NODE_NOT_FOUND') } } }, async (req) => deps.nodes.revoke(req.params.ref, req.principal.actor));
    app.delete('/nodes/:ref', { config: { permission: 'system.admin' }, schema: { tags, summary: 'Delete a node no backend runs on', params: RefParams, response: { 204: Type.Null(), ...errorResponses('NODE_NOT_FOUND', 'NODE_IN_USE') } } }, async (req, reply) => {
      await deps.nodes.delete(req.params.ref, req.principal.actor);
      return reply.status(204).send(null);
    });
  };
}

/**
 * POST /v1/nodes/{ref}/enroll ({ref}: the node's name), sent by `stowage node run --enroll`: no bearer token, the one-time
 * enrollment token in the body is the credential. Every refusal is the same 401 ENROLLMENT_INVALID.
 */
export function nodeEnrollRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const attempts = new Map<string, { n: number; since: number }>();
    app.post('/nodes/:ref/enroll', {
      config: { permission: 'public' },
      bodyLimit: ENROLL_BODY_LIMIT_BYTES,
      schema: {
        tags: ['nodes'], summary: 'Enroll a node with its one-time token and self-signed certificate (no bearer token)', security: [],
        params: RefParams, body: EnrollNodeBody, response: { 200: NodeEnrolledSchema, ...errorResponses('ENROLLMENT_INVALID') },
      },
    }, async (req) => {
      const now = Date.now();
      const seen = attempts.get(req.ip);
      const slot = seen && now - seen.since < ENROLL_WINDOW_MS ? seen : { n: 0, since: now };
      slot.n++;
      attempts.set(req.ip, slot);
      if (attempts.size > 10_000) attempts.clear();
      if (slot.n > ENROLL_ATTEMPTS_PER_WINDOW) throw new StowageError('ENROLLMENT_INVALID', 'too many enrollment attempts from this address; wait a minute', {});
      return deps.nodes.enroll(req.params.ref, req.body.token, req.body.certPem);
    });
  };
}
