import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { CreateHostBody, HostSchema, UpdateHostBody } from '../../core/schemas/host-schema.js';
import { Page, PlainListQuery } from '../../core/models.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { RefParams } from '../schemas.js';

/** /v1/hosts: the hosts that volumes are granted to. */
export function hostRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['hosts'];
    app.post('/hosts', { schema: { tags, summary: 'Register a host (name, initiator name, addresses, zone)', body: CreateHostBody, response: { 201: HostSchema, ...errorResponses('INVALID_NAME', 'NAME_TAKEN') } } }, async (req, reply) => {
      const host = await deps.hosts.create(req.body, req.principal.actor, req.principal.tenantId, req.idempotencyClaim?.key);
      return reply.status(201).send(host);
    });
    app.get('/hosts', { schema: { tags, summary: 'List hosts (by name; paginated)', querystring: PlainListQuery, response: { 200: Page(HostSchema), ...errorResponses() } } }, async (req) => deps.hosts.list(req.query));
    app.get('/hosts/:ref', { schema: { tags, summary: 'Show a host', params: RefParams, response: { 200: HostSchema, ...errorResponses('HOST_NOT_FOUND') } } }, async (req) => deps.hosts.get(req.params.ref));
    app.patch('/hosts/:ref', { schema: { tags, summary: 'Change a host\'s initiator name, addresses or zone', params: RefParams, body: UpdateHostBody, response: { 200: HostSchema, ...errorResponses('HOST_NOT_FOUND') } } }, async (req) => deps.hosts.update(req.params.ref, req.body, req.principal.actor));
    app.delete('/hosts/:ref', { schema: { tags, summary: 'Delete a host that has no access left', params: RefParams, response: { 204: Type.Null(), ...errorResponses('HOST_NOT_FOUND', 'HOST_IN_USE') } } }, async (req, reply) => {
      await deps.hosts.delete(req.params.ref, req.principal.actor);
      return reply.status(204).send(null);
    });
  };
}
