import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { compact, nonEmpty } from '../../core/compact.js';
import { Page } from '../../core/models.js';
import { DryRunResponse } from '../../core/schemas/placement-schema.js';
import type { RequestContext } from '../../volumes/volume-service.js';
import { CreateVolumeBody, ResizeVolumeBody, VolumeListQuery, VolumeSchema, VolumeWithOperation, createVolumeInput } from '../../core/schemas/volume-schema.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { listTenant } from '../auth.js';
import { IdempotencyHeaders } from '../idempotency.js';
import { RefParams, WaitQuery } from '../schemas.js';
import { maybeWait } from './wait.js';

function requestContext(req: FastifyRequest, key: string | undefined): RequestContext {
  return { actor: req.principal.actor, tenantId: req.principal.tenantId, idempotencyKey: key };
}

/** /v1/volumes and /v1/placements/dry-run. */
export function volumeRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['volumes'];
    const submitted = { 200: VolumeWithOperation, 202: VolumeWithOperation };

    app.post('/volumes', {
      config: { permission: 'tenant.write' },
      schema: {
        tags, summary: 'Create a volume: placed now, provisioned by an operation (202), or waited for with ?wait=true',
        body: CreateVolumeBody, querystring: WaitQuery, headers: IdempotencyHeaders,
        response: { ...submitted, ...errorResponses('INVALID_NAME', 'INVALID_SIZE', 'NAME_TAKEN', 'BACKEND_NOT_FOUND', 'CLASS_NOT_FOUND', 'NO_VALID_BACKEND', 'IDEMPOTENCY_CONFLICT', 'DRIVER_FAILED', 'BACKEND_UNAVAILABLE', 'PAYLOAD_TOO_LARGE') },
      },
    }, async (req, reply) => {
      const s = await deps.volumes.create(createVolumeInput(req.body), requestContext(req, req.headers['idempotency-key']));
      const { op, finished } = await maybeWait(deps.engine, s.operation, req.query.wait, req.query.timeoutMs);
      const volume = finished ? await deps.volumes.get(s.resource.id, req.principal.tenantId) : s.resource;
      return reply.status(finished ? 200 : 202).send({ volume, operation: op });
    });

    app.post('/placements/dry-run', {
      config: { permission: 'tenant.write' },
      schema: {
        tags: ['placement'], summary: 'Show every backend\'s verdict for a volume request, and the winner, changing nothing',
        body: CreateVolumeBody, response: { 200: DryRunResponse, ...errorResponses('INVALID_NAME', 'INVALID_SIZE', 'BACKEND_NOT_FOUND', 'CLASS_NOT_FOUND') },
      },
    }, async (req) => {
      const d = await deps.volumes.dryRun(createVolumeInput(req.body), req.principal.tenantId);
      return { winner: d.winner?.name ?? null, reason: d.summary.reason, verdicts: d.verdicts, summary: d.summary };
    });

    app.get('/volumes', {
      config: { permission: 'tenant.read' },
      schema: { tags, summary: 'List volumes (by name; paginated; every tenant\'s for admins with allTenants)', querystring: VolumeListQuery, response: { 200: Page(VolumeSchema), ...errorResponses('BACKEND_NOT_FOUND', 'FORBIDDEN') } },
    }, async (req) => deps.volumes.list(compact({
      tenantId: listTenant(req.principal, req.query.allTenants), limit: req.query.limit,
      cursor: nonEmpty(req.query.cursor), backend: nonEmpty(req.query.backend), state: req.query.state,
    })));

    app.get('/volumes/:ref', {
      config: { permission: 'tenant.read' },
      schema: { tags, summary: 'Show a volume with its placement decision', params: RefParams, response: { 200: VolumeSchema, ...errorResponses('VOLUME_NOT_FOUND') } },
    }, async (req) => deps.volumes.get(req.params.ref, req.principal.tenantId));

    app.post('/volumes/:ref/resize', {
      config: { permission: 'tenant.write' },
      schema: {
        tags, summary: 'Grow a volume', params: RefParams, body: ResizeVolumeBody, querystring: WaitQuery, headers: IdempotencyHeaders,
        response: { ...submitted, ...errorResponses('VOLUME_NOT_FOUND', 'INVALID_SIZE', 'INVALID_STATE', 'SHRINK_NOT_SUPPORTED', 'NO_VALID_BACKEND') },
      },
    }, async (req, reply) => {
      const s = await deps.volumes.resize(req.params.ref, req.body.sizeBytes, requestContext(req, req.headers['idempotency-key']));
      const { op, finished } = await maybeWait(deps.engine, s.operation, req.query.wait, req.query.timeoutMs);
      const volume = finished ? await deps.volumes.get(s.resource.id, req.principal.tenantId) : s.resource;
      return reply.status(finished ? 200 : 202).send({ volume, operation: op });
    });

    app.delete('/volumes/:ref', {
      config: { permission: 'tenant.write' },
      schema: {
        tags, summary: 'Delete a volume and its data', params: RefParams, querystring: WaitQuery, headers: IdempotencyHeaders,
        response: { ...submitted, ...errorResponses('VOLUME_NOT_FOUND', 'INVALID_STATE') },
      },
    }, async (req, reply) => {
      const s = await deps.volumes.delete(req.params.ref, requestContext(req, req.headers['idempotency-key']));
      const { op, finished } = await maybeWait(deps.engine, s.operation, req.query.wait, req.query.timeoutMs);
      const volume = finished ? await deps.volumes.get(s.resource.id, req.principal.tenantId) : s.resource;
      return reply.status(finished ? 200 : 202).send({ volume, operation: op });
    });
  };
}
