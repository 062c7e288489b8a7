import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { BackendSchema, BackendWithOperation, CreateBackendBody, UpdateBackendBody } from '../../core/schemas/backend-schema.js';
import { Page, PlainListQuery } from '../../core/models.js';
import { BackendActivitySchema } from '../../reconcile/backend-activity.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { RefParams } from '../schemas.js';

/** /v1/backends: register, list, show, update, enable, disable, refresh, delete. */
export function backendRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['backends'];

    app.post('/backends', {
      config: { permission: 'system.admin' },
      schema: {
        tags, summary: 'Register a backend (probed at once; offline with the reason if the probe fails)', body: CreateBackendBody,
        response: { 201: BackendWithOperation, ...errorResponses('INVALID_NAME', 'INVALID_DRIVER_URI', 'UNKNOWN_DRIVER', 'NAME_TAKEN', 'NODE_NOT_FOUND') },
      },
    }, async (req, reply) => {
      const { backend, operationId } = await deps.backends.create(req.body, req.principal.actor, req.idempotencyClaim?.key);
      const operation = await deps.engine.waitFor(operationId, 0);
      return reply.status(201).send({ backend, operation });
    });

    app.get('/backends', {
      config: { permission: 'system.admin' },
      schema: { tags, summary: 'List backends with state and capacity (by name; paginated)', querystring: PlainListQuery, response: { 200: Page(BackendSchema), ...errorResponses() } },
    }, async (req) => deps.backends.list(req.query));

    app.get('/backends/:ref', {
      config: { permission: 'system.admin' },
      schema: {
        tags, summary: 'Show one backend, with how often this replica reconciled and probed it', params: RefParams,
        response: { 200: Type.Composite([BackendSchema, BackendActivitySchema]), ...errorResponses('BACKEND_NOT_FOUND') },
      },
    }, async (req) => deps.backends.detail(req.params.ref));

    app.patch('/backends/:ref', {
      config: { permission: 'system.admin' },
      schema: { tags, summary: 'Change role, cost, tags, zone, overcommit, reserve or capability overrides', params: RefParams, body: UpdateBackendBody, response: { 200: BackendSchema, ...errorResponses('BACKEND_NOT_FOUND') } },
    }, async (req) => deps.backends.update(req.params.ref, req.body, req.principal.actor));

    for (const verb of ['enable', 'disable'] as const) {
      app.post(`/backends/:ref/${verb}`, {
        config: { permission: 'system.admin' },
        schema: { tags, summary: verb === 'enable' ? 'Enable a backend for new volumes' : 'Stop placing new volumes on a backend', params: RefParams, response: { 200: BackendSchema, ...errorResponses('BACKEND_NOT_FOUND') } },
      }, async (req) => deps.backends.setEnabled(req.params.ref, verb === 'enable', req.principal.actor));
    }

    app.post('/backends/:ref/refresh', {
      config: { permission: 'system.admin' },
      schema: { tags, summary: 'Probe a backend now', params: RefParams, response: { 200: BackendSchema, ...errorResponses('BACKEND_NOT_FOUND') } },
    }, async (req) => deps.backends.refresh(req.params.ref, req.principal.actor));

    app.delete('/backends/:ref', {
      config: { permission: 'system.admin' },
      schema: { tags, summary: 'Delete a backend that holds no volumes', params: RefParams, response: { 204: Type.Null(), ...errorResponses('BACKEND_NOT_FOUND', 'BACKEND_IN_USE') } },
    }, async (req, reply) => {
      await deps.backends.delete(req.params.ref, req.principal.actor);
      return reply.status(204).send(null);
    });
  };
}
