import { StowageError, toStowageError } from '../core/errors.js';
import { idOf, type BackendId, type VolumeId } from '../core/ids.js';
import type { PlacementSummary } from '../placement/placement-schema.js';
import { formatSize } from '../core/sizes.js';
import type { BlockDriver, DriverHandle } from '../drivers/sdk/types.js';
import type { VolumeState } from '../core/states.js';
import type { CommandRunner } from '../system/command-runner.js';
import { SnapshotRepository } from '../store/access-repository.js';
import type { CloneSource } from './volume-service.js';
import type { DriverCache } from '../backends/driver-cache.js';
import type { OperationHandler, StepContext } from '../operations/handler.js';
import { isLeaseLost } from '../operations/lease-lost-error.js';
import { hostCopy } from './host-copy.js';
import { decide, type PlacementRequest } from '../placement/placement.js';
import { BackendRepository } from '../store/backend-repository.js';
import { ClaimRepository } from '../store/claim-repository.js';
import { EventRepository } from '../store/event-repository.js';
import { nowIso, readJson, writeJson } from '../store/json.js';
import type { VolumeRow } from '../store/schema.js';
import type { Executor, Store } from '../store/store.js';
import { transition, type PatchOf } from '../store/transition.js';
import { VolumeRepository, volumeHandle } from '../store/volume-repository.js';
import { loadBackendViews, lockPlacement } from './placement-view.js';
import { requirePort } from '../drivers/sdk/ports.js';

/** What the volume handlers need. */
export interface VolumeOperationDeps {
  readonly store: Store;
  readonly drivers: DriverCache;
  /** Backends tried for one create before it fails. */
  readonly placementAttempts: number;
  /** Runs qemu-img for host-side copies (clones a backend cannot offload). */
  readonly runner: CommandRunner;
}

/**
 * Makes the volume's data: a plain create, a clone on the backend (offloaded, or copied by the
 * backend itself), or a create followed by a host copy with `qemu-img convert`, with progress in
 * the operation. Every path is idempotent, so a resumed step simply runs it again.
 */
async function provisionData(deps: VolumeOperationDeps, ctx: StepContext, v: VolumeRow, driver: BlockDriver, backendName: string): Promise<DriverHandle> {
  const req = { id: v.id, name: v.name, sizeBytes: Number(v.size_bytes), format: v.format };
  const source = ctx.input.source as CloneSource | undefined;
  if (!source) return driver.createVolume(req, ctx.signal);
  if (source.path !== 'host-copy') {
    const handle = await requirePort(driver, 'clones', backendName).clone(await sourceHandle(deps, source), req, ctx.signal);
    ctx.note(`${source.path === 'offload' ? 'offloaded clone' : 'copied by the backend'} of ${source.type} ${source.name} on ${backendName}${typeof handle.method === 'string' ? ` (${handle.method})` : ''}`);
    return handle;
  }
  const src = await loadVolume(deps, idOf('volume', source.id));
  const { driver: srcDriver, backend: srcBackend } = await driverFor(deps, ctx, src.backend_id);
  const [srcData, data] = [requirePort(srcDriver, 'data', srcBackend.name), requirePort(driver, 'data', backendName)];
  const handle = await driver.createVolume(req, ctx.signal);
  await hostCopy(deps.runner, ctx, srcData.locate(handleOf(src)), data.locate(handle), req.sizeBytes);
  ctx.note(`host copy (qemu-img convert) of volume ${source.name} from ${srcBackend.name} to ${backendName}`);
  return handle;
}

/** The driver handle of a clone's source (snapshot or volume). */
async function sourceHandle(deps: VolumeOperationDeps, source: CloneSource): Promise<DriverHandle> {
  if (source.type === 'volume') return handleOf(await loadVolume(deps, idOf('volume', source.id)));
  const s = await snapshots.findById(deps.store.db, source.id);
  const h = s ? readJson<DriverHandle | null>(s.driver_handle, null) : null;
  if (!h) throw new StowageError('SNAPSHOT_NOT_FOUND', `snapshot ${source.name} has no data on its backend`, {});
  return h;
}

const volumes = new VolumeRepository();
const backends = new BackendRepository();
const events = new EventRepository();
const claims = new ClaimRepository();
const snapshots = new SnapshotRepository();

async function loadVolume(deps: VolumeOperationDeps, id: VolumeId): Promise<VolumeRow> {
  const v = await volumes.findById(deps.store.db, id);
  if (!v) throw new StowageError('VOLUME_NOT_FOUND', `volume ${id} vanished`, { volume: id });
  return v;
}

/** The backend's driver, guarded by the operation's lease (a stale worker makes no driver call). */
async function driverFor(deps: VolumeOperationDeps, ctx: StepContext, backendId: BackendId | null) {
  if (!backendId) throw new StowageError('INVALID_STATE', 'volume has no backend', {});
  const b = await backends.findById(deps.store.db, backendId);
  if (!b) throw new StowageError('BACKEND_NOT_FOUND', `backend ${backendId} no longer exists`, { backend: backendId });
  return { driver: ctx.guard(deps.drivers.get(b)), backend: b };
}

/** The handle stored at create, or one derived from the id (drivers key everything on our ids). */
function handleOf(v: VolumeRow): DriverHandle {
  return volumeHandle(v) ?? { id: v.id, format: v.format };
}

/** Moves the volume to `to` with an event; `also` runs in the same transaction (claim commit or release). */
async function moveVolume(deps: VolumeOperationDeps, ctx: StepContext, v: VolumeRow, to: VolumeState, patch: PatchOf<'volume'>, message: string, action: string, also?: (trx: Executor) => Promise<unknown>): Promise<void> {
  await ctx.write(async (trx) => {
    await transition(trx, 'volume', { id: v.id, tenantId: v.tenant_id, to, patch, event: { actor: ctx.operation.actor, action, message, resourceName: v.name, operationId: ctx.operation.id } });
    if (also) await also(trx);
  });
}

/** volume.create: provision on the placed backend (retrying elsewhere on driver failure), then activate. */
export function volumeCreateHandler(deps: VolumeOperationDeps): OperationHandler {
  return {
    kind: 'volume.create',
    steps: [
      {
        name: 'provision',
        run: async (ctx) => {
          for (;;) {
            const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
            const { driver, backend } = await driverFor(deps, ctx, v.backend_id);
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
              if (ctx.input.pinned === true || e.code === 'INVALID_STATE') throw err;
              await driver.deleteVolume(handleOf(v), ctx.signal).catch(() => undefined);
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
          await moveVolume(deps, ctx, v, 'available', { state_reason: null }, `volume ${v.name} is available (${formatSize(Number(v.size_bytes))})`, 'created',
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
          const { driver } = await driverFor(deps, ctx, v.backend_id);
          await driver.deleteVolume(handleOf(v), ctx.signal);
        } catch (err) {
          if (isLeaseLost(err)) throw err;
          cleanup = `; partial data could not be removed yet (${toStowageError(err).message}), delete the volume to retry`;
        }
      }
      await moveVolume(deps, ctx, v, 'error', { state_reason: `create failed: ${error.message}${cleanup}` }, `volume ${v.name} failed to create: ${error.message}`, 'create-failed',
        (trx) => claims.release(trx, v.id, ctx.operation.id));
    },
    result: async (ctx) => ({ volumeId: ctx.operation.target_id }),
  };
}

/** Records a failed attempt and moves the claim to the next backend; false when attempts are used up. */
async function replace(deps: VolumeOperationDeps, ctx: StepContext, v: VolumeRow, failedBackend: string, reason: string): Promise<boolean> {
  const request = ctx.input.request as PlacementRequest;
  const exclude = [...new Set([...(request.exclude), ...(ctx.input.excluded as string[] | undefined ?? []), v.backend_id ?? ''])];
  // Remembered first and outside the transaction (the engine writes with its own connection, which
  // would wait for this transaction on SQLite); excluding a failed backend early is always safe.
  await ctx.remember({ excluded: exclude });
  return ctx.write(async (trx) => {
    const summary = readJson<PlacementSummary | null>(v.placement, null);
    const attempts = [...(summary?.attempts ?? []), { backend: failedBackend, ok: false, error: reason }];
    if (attempts.length >= deps.placementAttempts) {
      await volumes.update(trx, v.id, { placement: writeJson({ ...summary, attempts }), updated_at: nowIso() });
      return false;
    }
    await lockPlacement(trx, deps.store.dialect);
    const views = await loadBackendViews(trx, backends);
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

/** volume.resize: grow on the backend, then mark available; on failure the old size comes back. */
export function volumeResizeHandler(deps: VolumeOperationDeps): OperationHandler {
  return {
    kind: 'volume.resize',
    steps: [
      {
        name: 'grow',
        run: async (ctx) => {
          const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
          const { driver } = await driverFor(deps, ctx, v.backend_id);
          await driver.resizeVolume(handleOf(v), Number(ctx.input.sizeBytes), ctx.signal);
        },
      },
      {
        name: 'activate',
        run: async (ctx) => {
          const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
          if (v.state === 'available') return;
          const sizeBytes = Number(ctx.input.sizeBytes);
          // The new size becomes provisioned as the growth claim is committed: one transaction.
          await moveVolume(deps, ctx, v, 'available', { size_bytes: sizeBytes, state_reason: null }, `volume ${v.name} is now ${formatSize(sizeBytes)}`, 'resized',
            (trx) => claims.commit(trx, v.id, ctx.operation.id));
        },
      },
    ],
    compensate: async (ctx, error) => {
      const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
      if (v.state !== 'resizing') {
        await ctx.write((trx) => claims.release(trx, v.id, ctx.operation.id));
        return;
      }
      await moveVolume(deps, ctx, v, 'available', { size_bytes: Number(ctx.input.previousSizeBytes), state_reason: `resize to ${formatSize(Number(ctx.input.sizeBytes))} failed: ${error.message}` }, `volume ${v.name} resize failed: ${error.message}`, 'resize-failed',
        (trx) => claims.release(trx, v.id, ctx.operation.id));
    },
    result: async (ctx) => ({ volumeId: ctx.operation.target_id, sizeBytes: ctx.input.sizeBytes }),
  };
}

/** volume.delete: remove the data on the backend, then mark deleted (the row stays for history). */
export function volumeDeleteHandler(deps: VolumeOperationDeps): OperationHandler {
  return {
    kind: 'volume.delete',
    steps: [
      {
        name: 'destroy',
        run: async (ctx) => {
          const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
          if (!v.backend_id) return;
          const { driver } = await driverFor(deps, ctx, v.backend_id);
          await driver.deleteVolume(handleOf(v), ctx.signal);
        },
      },
      {
        name: 'finalize',
        run: async (ctx) => {
          const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
          if (v.state === 'deleted') return;
          await moveVolume(deps, ctx, v, 'deleted', { deleted_at: nowIso(), state_reason: null }, `volume ${v.name} deleted`, 'deleted');
        },
      },
    ],
    compensate: async (ctx, error) => {
      const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
      if (v.state !== 'deleting') return;
      await moveVolume(deps, ctx, v, 'error', { state_reason: `delete failed: ${error.message}; run \`stowage volume delete ${v.name}\` again once the backend is back` }, `volume ${v.name} delete failed: ${error.message}`, 'delete-failed');
    },
    result: async (ctx) => ({ volumeId: ctx.operation.target_id }),
  };
}
