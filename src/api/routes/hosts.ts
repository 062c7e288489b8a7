import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { HostSchema, Name, Page } from '../../core/models.js';
import { PageQuery } from '../pagination.js';
import { INITIATOR_NAME_PATTERN } from '../../core/names.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { RefParams } from '../schemas.js';

const Addresses = Type.Array(Type.String({ minLength: 2, maxLength: 45, description: 'IPv4 or IPv6 address' }), { maxItems: 16, uniqueItems: true });
const Initiator = Type.String({ pattern: INITIATOR_NAME_PATTERN, maxLength: 223, description: 'iSCSI initiator name, e.g. iqn.2024-01.com.example:host-a' });
const CreateHostBody = Type.Object({ name: Name, initiatorName: Type.Optional(Initiator), addresses: Type.Optional(Addresses), zone: Type.Optional(Name) }, { additionalProperties: false });
const UpdateHostBody = Type.Object({ initiatorName: Type.Optional(Type.Union([Initiator, Type.Null()])), addresses: Type.Optional(Addresses), zone: Type.Optional(Type.Union([Name, Type.Literal('')])) }, { additionalProperties: false, minProperties: 1 });

/** /v1/hosts: the hosts that volumes are granted to. */
export function hostRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['hosts'];
    app.post('/hosts', { schema: { tags, summary: 'Register a host (name, initiator name, addresses, zone)', body: CreateHostBody, response: { 201: HostSchema, ...errorResponses('INVALID_NAME', 'NAME_TAKEN') } } }, async (req, reply) => {
      const b = req.body;
      const host = await deps.hosts.create({ name: b.name, ...(b.initiatorName ? { initiatorName: b.initiatorName } : {}), ...(b.addresses ? { addresses: b.addresses } : {}), ...(b.zone ? { zone: b.zone } : {}) }, req.principal.actor, req.principal.tenantId, req.idempotencyClaim?.key);
      return reply.status(201).send(host);
    });
    app.get('/hosts', { schema: { tags, summary: 'List hosts (by name; paginated)', querystring: Type.Composite([PageQuery], { additionalProperties: false }), response: { 200: Page(HostSchema), ...errorResponses() } } }, async (req) => deps.hosts.list(req.query));
    app.get('/hosts/:ref', { schema: { tags, summary: 'Show a host', params: RefParams, response: { 200: HostSchema, ...errorResponses('HOST_NOT_FOUND') } } }, async (req) => deps.hosts.get(req.params.ref));
    app.patch('/hosts/:ref', { schema: { tags, summary: 'Change a host\'s initiator name, addresses or zone', params: RefParams, body: UpdateHostBody, response: { 200: HostSchema, ...errorResponses('HOST_NOT_FOUND') } } }, async (req) => {
      const b = req.body;
      return deps.hosts.update(req.params.ref, { ...(b.initiatorName !== undefined ? { initiatorName: b.initiatorName } : {}), ...(b.addresses ? { addresses: b.addresses } : {}), ...(b.zone !== undefined ? { zone: b.zone } : {}) }, req.principal.actor);
    });
    app.delete('/hosts/:ref', { schema: { tags, summary: 'Delete a host that has no access left', params: RefParams, response: { 204: Type.Null(), ...errorResponses('HOST_NOT_FOUND', 'HOST_IN_USE') } } }, async (req, reply) => {
      await deps.hosts.delete(req.params.ref, req.principal.actor);
      return reply.status(204).send(null);
    });
  };
}
