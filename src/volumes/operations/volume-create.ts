import { Type, type Static } from '@sinclair/typebox';
import { isNodeGone, isNodeWait } from '../../nodes/node-errors.js';
import { StowageError, toStowageError } from '../../core/errors.js';
import { idOf } from '../../core/ids.js';
import type { PlacementSummary } from '../../core/schemas/placement-schema.js';
import { formatSize } from '../../core/sizes.js';
import { VOLUME_FORMATS } from '../../core/states.js';
import { requirePort } from '../../drivers/sdk/ports.js';
import type { BlockDriver, DriverHandle } from '../../drivers/sdk/types.js';
import { defineOperation, oneOf } from '../../operations/define-operation.js';
import type { StepContext } from '../../operations/handler.js';
import { isLeaseLost } from '../../operations/lease-lost-error.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { decide, PLACEMENT_POLICIES } from '../../placement/placement.js';
import { nowIso, readJson, writeJson } from '../../store/json.js';
import type { VolumeRow } from '../../store/schema.js';
import { hostCopy } from '../host-copy.js';
import { streamCopy } from '../stream-copy.js';
import { loadBackendViews } from '../placement-view.js';
import { lockPlacement } from '../../store/placement-lock.js';
import { moveVolume } from './move-volume.js';
import { backendDriver, handleOfVolume, loadVolume, volumeOnBackend } from './volume-driver.js';

const Strings = Type.Array(Type.String());

/** The placement request a create was decided on (retried on another backend with `exclude` grown). */
const PlacementRequestSchema = Type.Object({
  sizeBytes: Type.Number(), kind: Type.String(), requiredTags: Strings, forbiddenTags: Strings, requiredCapabilities: Strings,
  zone: Type.Union([Type.String(), Type.Null()]), policy: oneOf(PLACEMENT_POLICIES), className: Type.Union([Type.String(), Type.Null()]),
  exclude: Strings, tenantId: Type.Optional(Type.Union([Type.String(), Type.Null()])),
});

/** Where a clone's data comes from and how it is made (the service's `CloneSource`). */
const CloneSourceSchema = Type.Object({
  type: oneOf(['snapshot', 'volume']), id: Type.String(), name: Type.String(), backendId: Type.String(), sizeBytes: Type.Number(),
  format: oneOf(VOLUME_FORMATS), path: oneOf(['offload', 'backend-copy', 'host-copy']),
});

/** volume.create's input: what the service placed, and what the provision step remembers (`excluded`). */
export const VolumeCreateInput = Type.Object({
  name: Type.String(), sizeBytes: Type.Integer({ minimum: 0 }), format: oneOf(VOLUME_FORMATS), request: PlacementRequestSchema, pinned: Type.Boolean(),
  source: Type.Optional(CloneSourceSchema),
  /** Backends that failed this create, remembered before the retry moves the claim. */
  excluded: Type.Optional(Strings),
});
type Input = Static<typeof VolumeCreateInput>;
type Ctx = StepContext<Input>;
type CloneSource = Static<typeof CloneSourceSchema>;

/**
 * Makes the volume's data: a plain create, a clone on the backend (offloaded, or copied by the
 * backend itself), or a create followed by a host copy with `qemu-img convert` (both backends in
 * this process) or a streamed copy (a storage node on either side), with progress in the
 * operation. Every path is idempotent, so a resumed step simply runs it again.
 */
async function provisionData(deps: OperationDeps, ctx: Ctx, v: VolumeRow, driver: BlockDriver, backendName: string): Promise<DriverHandle> {
  const req = { id: v.id, name: v.name, sizeBytes: Number(v.size_bytes), format: v.format };
  const { source } = ctx.input;
  if (!source) return driver.createVolume(req, ctx.signal);
  if (source.path !== 'host-copy') {
    const handle = await requirePort(driver, 'clones', backendName).clone(await sourceHandle(deps, source), req, ctx.signal);
    ctx.note(`${source.path === 'offload' ? 'offloaded clone' : 'copied by the backend'} of ${source.type} ${source.name} on ${backendName}${typeof handle.method === 'string' ? ` (${handle.method})` : ''}`);
    return handle;
  }
  const src = await volumeOnBackend(deps, ctx, await loadVolume(deps, idOf('volume', source.id)));
  const [srcData, data] = [requirePort(src.driver, 'data', src.backend.name), requirePort(driver, 'data', backendName)];
  const handle = await driver.createVolume(req, ctx.signal);
  if (src.driver.node === undefined && driver.node === undefined) {
    await hostCopy(deps.runner, ctx, srcData.locate(src.handle), data.locate(handle), req.sizeBytes);
    ctx.note(`host copy (qemu-img convert) of volume ${source.name} from ${src.backend.name} to ${backendName}`);
    return handle;
  }
  // A storage node is involved: its files are not on this machine, so the bytes stream (node to
  // control plane memory to node, never this disk; see nodes/remote-data.ts for why not node to node).
  const bytes = await streamCopy(ctx, { data: srcData, handle: src.handle, backend: src.backend.name }, { data, handle, backend: backendName });
  ctx.note(`streamed copy of volume ${source.name} from ${placeOf(src.driver, src.backend.name)} to ${placeOf(driver, backendName)} (${String(bytes)} bytes)`);
  return handle;
}

/** `node/backend` for a backend on a storage node, the backend's name otherwise. */
function placeOf(driver: BlockDriver, backendName: string): string {
  return driver.node === undefined ? backendName : `${driver.node}/${backendName}`;
}

/** The driver handle of a clone's source (snapshot or volume). */
async function sourceHandle(deps: OperationDeps, source: CloneSource): Promise<DriverHandle> {
  if (source.type === 'volume') return handleOfVolume(await loadVolume(deps, idOf('volume', source.id)));
  const s = await deps.repos.snapshots.findById(deps.store.db, source.id);
  const h = s ? readJson<DriverHandle | null>(s.driver_handle, null) : null;
  if (!h) throw new StowageError('SNAPSHOT_NOT_FOUND', `snapshot ${source.name} has no data on its backend`, {});
  return h;
}

/** Records a failed attempt and moves the claim to the next backend; false when attempts are used up. */
async function replace(deps: OperationDeps, ctx: Ctx, v: VolumeRow, failedBackend: string, reason: string): Promise<boolean> {
  const { request } = ctx.input;
  const exclude = [...new Set([...request.exclude, ...(ctx.input.excluded ?? []), v.backend_id ?? ''])];
  // Remembered first and outside the transaction (the engine writes with its own connection, which
  // would wait for this transaction on SQLite); excluding a failed backend early is always safe.
  await ctx.remember({ excluded: exclude });
  const { volumes, backends, claims, events } = deps.repos;
  return ctx.write(async (trx) => {
    const summary = readJson<PlacementSummary | null>(v.placement, null);
    const attempts = [...(summary?.attempts ?? []), { backend: failedBackend, ok: false, error: reason }];
    if (attempts.length >= deps.placementAttempts) {
      await volumes.update(trx, v.id, { placement: writeJson({ ...summary, attempts }), updated_at: nowIso() });
      return false;
    }
    await lockPlacement(trx, deps.store.dialect);
    const views = await loadBackendViews(trx, backends, v.tenant_id);
    // The volume's own claim still sits on the failed backend until below; it is excluded anyway.
    const decision = decide(views, { ...request, exclude });
    if (!decision.winner) {
      await volumes.update(trx, v.id, { placement: writeJson({ ...summary, attempts, reason: `${summary?.reason ?? ''}; retry found no other backend` }), updated_at: nowIso() });
      return false;
    }
    // The claim moves with the volume: released on the failed backend, held on the next, in this transaction.
    await claims.release(trx, v.id, ctx.operation.id);
    const winner = idOf('backend', decision.winner.id);
    await claims.hold(trx, { backendId: winner, resourceType: 'volume', resourceId: v.id, operationId: ctx.operation.id, bytes: Number(v.size_bytes) });
    await volumes.update(trx, v.id, {
      backend_id: winner, driver_handle: null, updated_at: nowIso(),
      placement: writeJson({ ...decision.summary, pinned: false, attempts, reason: `${failedBackend} failed (${reason}); retried on ${decision.winner.name}: ${decision.summary.reason}` }),
    });
    await events.append(trx, {
      tenantId: v.tenant_id, actor: ctx.operation.actor, resourceType: 'volume', resourceId: v.id, resourceName: v.name, action: 'replace',
      from: 'creating', to: 'creating', operationId: ctx.operation.id, message: `create on ${failedBackend} failed (${reason}); trying ${decision.winner.name}`,
    });
    return true;
  });
}

/** volume.create: provision on the placed backend (retrying elsewhere on driver failure), then activate. */
export function volumeCreate(deps: OperationDeps) {
  const { volumes, claims } = deps.repos;
  return defineOperation({
    kind: 'volume.create',
    input: VolumeCreateInput,
    steps: [
      {
        name: 'provision',
        run: async (ctx) => {
          for (;;) {
            const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
            const { driver, backend } = await backendDriver(deps, ctx, v.backend_id);
            try {
              const handle = await provisionData(deps, ctx, v, driver, backend.name);
              const summary = readJson<PlacementSummary | null>(v.placement, null);
              const attempts = [...(summary?.attempts ?? []).filter((a) => !(a.ok && a.backend === backend.name)), { backend: backend.name, ok: true, error: null }];
              await ctx.write((trx) => volumes.update(trx, v.id, {
                driver_handle: writeJson(handle), updated_at: nowIso(), ...(summary ? { placement: writeJson({ ...summary, attempts }) } : {}),
              }));
              if (!ctx.input.source) ctx.note(`created on ${backend.name}`);
              return;
            } catch (err) {
              // A lost lease is not a driver failure: the new owner carries on, this worker touches nothing.
              if (isLeaseLost(err) || isLeaseLost(ctx.signal.reason)) throw err;
              const e = toStowageError(err);
              // A node that does not answer is waited for, not failed over: the engine requeues the operation.
              if (ctx.input.pinned || e.code === 'INVALID_STATE' || isNodeWait(e)) throw err;
              await driver.deleteVolume(handleOfVolume(v), ctx.signal).catch(() => undefined);
              const moved = await replace(deps, ctx, v, backend.name, e.message);
              if (!moved) throw err;
            }
          }
        },
      },
      {
        name: 'activate',
        run: async (ctx) => {
          const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
          if (v.state === 'available') return;
          // The volume becomes provisioned and its claim committed in one transaction: counted once, always.
          await moveVolume(ctx, v, 'available', { state_reason: null }, `volume ${v.name} is available (${formatSize(Number(v.size_bytes))})`, 'created',
            (trx) => claims.commit(trx, v.id, ctx.operation.id));
        },
      },
    ],
    compensate: async (ctx, error) => {
      const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
      if (v.state === 'error') {
        await ctx.write((trx) => claims.release(trx, v.id, ctx.operation.id));
        return;
      }
      let cleanup = '';
      if (v.backend_id) {
        try {
          const { driver } = await backendDriver(deps, ctx, v.backend_id);
          await driver.deleteVolume(handleOfVolume(v), ctx.signal);
        } catch (err) {
          // A node that does not answer is waited for; a deleted node holds nothing left to remove.
          if (isLeaseLost(err) || isNodeWait(err)) throw err;
          if (!isNodeGone(err)) cleanup = `; partial data could not be removed yet (${toStowageError(err).message}), delete the volume to retry`;
        }
      }
      await moveVolume(ctx, v, 'error', { state_reason: `create failed: ${error.message}${cleanup}` }, `volume ${v.name} failed to create: ${error.message}`, 'create-failed',
        (trx) => claims.release(trx, v.id, ctx.operation.id));
    },
    result: async (ctx) => ({ volumeId: ctx.operation.target_id }),
  });
}
