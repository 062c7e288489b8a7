import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Page } from '../../core/models.js';
import { CreateSnapshotBody, RevertVolumeBody, SnapshotListQuery, SnapshotSchema, SnapshotWithOperation } from '../../core/schemas/snapshot-schema.js';
import { VolumeWithOperation } from '../../core/schemas/volume-schema.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { listTenant } from '../auth.js';
import { RefParams, WaitQuery } from '../schemas.js';
import { maybeWait } from './wait.js';

/** /v1/snapshots and /v1/volumes/:ref/revert. */
export function snapshotRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['snapshots'];
    const ctxOf = (p: { actor: string; tenantId: string }) => ({ actor: p.actor, tenantId: p.tenantId, idempotencyKey: undefined });
    app.post('/snapshots', {
      config: { permission: 'tenant.write' },
      schema: { tags, summary: 'Snapshot a volume on its backend (offloaded where the backend can)', body: CreateSnapshotBody, querystring: WaitQuery, response: { 200: SnapshotWithOperation, 202: SnapshotWithOperation, ...errorResponses('VOLUME_NOT_FOUND', 'INVALID_NAME', 'NAME_TAKEN', 'INVALID_STATE', 'CAPABILITY_MISSING') } },
    }, async (req, reply) => {
      const s = await deps.snapshots.create(req.body.volume, req.body.name, ctxOf(req.principal));
      const { op, finished } = await maybeWait(deps.engine, s.operation, req.query.wait, req.query.timeoutMs);
      return reply.status(finished ? 200 : 202).send({ snapshot: finished ? await deps.snapshots.get(s.snapshot.id, req.principal.tenantId) : s.snapshot, operation: op });
    });
    app.get('/snapshots', { config: { permission: 'tenant.read' }, schema: { tags, summary: 'List snapshots (oldest first; paginated)', querystring: SnapshotListQuery, response: { 200: Page(SnapshotSchema), ...errorResponses('VOLUME_NOT_FOUND', 'FORBIDDEN') } } }, async (req) => deps.snapshots.list(listTenant(req.principal, req.query.allTenants), req.query.volume, req.query));
    app.get('/snapshots/:ref', { config: { permission: 'tenant.read' }, schema: { tags, summary: 'Show a snapshot', params: RefParams, response: { 200: SnapshotSchema, ...errorResponses('SNAPSHOT_NOT_FOUND') } } }, async (req) => deps.snapshots.get(req.params.ref, req.principal.tenantId));
    app.delete('/snapshots/:ref', { config: { permission: 'tenant.write' }, schema: { tags, summary: 'Delete a snapshot', params: RefParams, querystring: WaitQuery, response: { 200: SnapshotWithOperation, 202: SnapshotWithOperation, ...errorResponses('SNAPSHOT_NOT_FOUND', 'INVALID_STATE') } } }, async (req, reply) => {
      const s = await deps.snapshots.delete(req.params.ref, ctxOf(req.principal));
      const { op, finished } = await maybeWait(deps.engine, s.operation, req.query.wait, req.query.timeoutMs);
      return reply.status(finished ? 200 : 202).send({ snapshot: finished ? await deps.snapshots.get(s.snapshot.id, req.principal.tenantId) : s.snapshot, operation: op });
    });
    app.post('/volumes/:ref/revert', {
      config: { permission: 'tenant.write' },
      schema: { tags, summary: 'Revert a volume to one of its snapshots (no host may have access)', params: RefParams, body: RevertVolumeBody, querystring: WaitQuery, response: { 200: VolumeWithOperation, 202: VolumeWithOperation, ...errorResponses('VOLUME_NOT_FOUND', 'SNAPSHOT_NOT_FOUND', 'INVALID_STATE', 'VOLUME_IN_USE') } },
    }, async (req, reply) => {
      const s = await deps.snapshots.revert(req.params.ref, req.body.snapshot, ctxOf(req.principal));
      const { op, finished } = await maybeWait(deps.engine, s.operation, req.query.wait, req.query.timeoutMs);
      return reply.status(finished ? 200 : 202).send({ volume: finished ? await deps.volumes.get(s.volume.id, req.principal.tenantId) : s.volume, operation: op });
    });
  };
}
