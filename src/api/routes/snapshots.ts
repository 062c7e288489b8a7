import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { Name, OperationSchema, Page, SnapshotSchema, VolumeSchema } from '../../core/models.js';
import { PageQuery } from '../pagination.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { RefParams, WaitQuery } from '../schemas.js';
import { maybeWait } from './wait.js';

const SnapshotAnswer = Type.Object({ snapshot: SnapshotSchema, operation: OperationSchema });
const VolumeAnswer = Type.Object({ volume: VolumeSchema, operation: OperationSchema });

/** /v1/snapshots and /v1/volumes/:ref/revert. */
export function snapshotRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['snapshots'];
    const ctxOf = (p: { actor: string; tenantId: string }) => ({ actor: p.actor, tenantId: p.tenantId, idempotencyKey: undefined });
    app.post('/snapshots', {
      schema: { tags, summary: 'Snapshot a volume on its backend (offloaded where the backend can)', body: Type.Object({ volume: Type.String({ minLength: 1, maxLength: 128 }), name: Name }, { additionalProperties: false }), querystring: WaitQuery, response: { 200: SnapshotAnswer, 202: SnapshotAnswer, ...errorResponses('VOLUME_NOT_FOUND', 'INVALID_NAME', 'NAME_TAKEN', 'INVALID_STATE', 'CAPABILITY_MISSING') } },
    }, async (req, reply) => {
      const s = await deps.snapshots.create(req.body.volume, req.body.name, ctxOf(req.principal));
      const { op, finished } = await maybeWait(deps.engine, s.operation, req.query.wait, req.query.timeoutMs);
      return reply.status(finished ? 200 : 202).send({ snapshot: finished ? await deps.snapshots.get(s.snapshot.id, req.principal.tenantId) : s.snapshot, operation: op });
    });
    app.get('/snapshots', { schema: { tags, summary: 'List snapshots (oldest first; paginated)', querystring: Type.Composite([PageQuery, Type.Object({ volume: Type.Optional(Type.String({ maxLength: 128 })) })], { additionalProperties: false }), response: { 200: Page(SnapshotSchema), ...errorResponses('VOLUME_NOT_FOUND') } } }, async (req) => deps.snapshots.list(req.principal.tenantId, req.query.volume, req.query));
    app.get('/snapshots/:ref', { schema: { tags, summary: 'Show a snapshot', params: RefParams, response: { 200: SnapshotSchema, ...errorResponses('SNAPSHOT_NOT_FOUND') } } }, async (req) => deps.snapshots.get(req.params.ref, req.principal.tenantId));
    app.delete('/snapshots/:ref', { schema: { tags, summary: 'Delete a snapshot', params: RefParams, querystring: WaitQuery, response: { 200: SnapshotAnswer, 202: SnapshotAnswer, ...errorResponses('SNAPSHOT_NOT_FOUND', 'INVALID_STATE') } } }, async (req, reply) => {
      const s = await deps.snapshots.delete(req.params.ref, ctxOf(req.principal));
      const { op, finished } = await maybeWait(deps.engine, s.operation, req.query.wait, req.query.timeoutMs);
      return reply.status(finished ? 200 : 202).send({ snapshot: finished ? await deps.snapshots.get(s.snapshot.id, req.principal.tenantId) : s.snapshot, operation: op });
    });
    app.post('/volumes/:ref/revert', {
      schema: { tags, summary: 'Revert a volume to one of its snapshots (no host may have access)', params: RefParams, body: Type.Object({ snapshot: Type.String({ minLength: 1, maxLength: 128 }) }, { additionalProperties: false }), querystring: WaitQuery, response: { 200: VolumeAnswer, 202: VolumeAnswer, ...errorResponses('VOLUME_NOT_FOUND', 'SNAPSHOT_NOT_FOUND', 'INVALID_STATE', 'VOLUME_IN_USE') } },
    }, async (req, reply) => {
      const s = await deps.snapshots.revert(req.params.ref, req.body.snapshot, ctxOf(req.principal));
      const { op, finished } = await maybeWait(deps.engine, s.operation, req.query.wait, req.query.timeoutMs);
      return reply.status(finished ? 200 : 202).send({ volume: finished ? await deps.volumes.get(s.volume.id, req.principal.tenantId) : s.volume, operation: op });
    });
  };
}
