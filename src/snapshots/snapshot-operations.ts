import { StowageError } from '../core/errors.js';
import { idOf, type BackendId, type VolumeId } from '../core/ids.js';
import type { DriverCache } from '../backends/driver-cache.js';
import type { DriverHandle } from '../drivers/sdk/types.js';
import type { OperationHandler, StepContext } from '../operations/handler.js';
import { SnapshotRepository } from '../store/access-repository.js';
import { BackendRepository } from '../store/backend-repository.js';
import { ClaimRepository } from '../store/claim-repository.js';
import { nowIso, readJson, writeJson } from '../store/json.js';
import type { SnapshotRow, VolumeRow } from '../store/schema.js';
import type { Store } from '../store/store.js';
import { transition, type PatchOf } from '../store/transition.js';
import type { SnapshotState } from '../core/states.js';
import { VolumeRepository, volumeHandle } from '../store/volume-repository.js';
import { requirePort } from '../drivers/sdk/ports.js';

/** What the snapshot handlers need. */
export interface SnapshotOperationDeps {
  readonly store: Store;
  readonly drivers: DriverCache;
}

const snapshots = new SnapshotRepository();
const volumes = new VolumeRepository();
const backends = new BackendRepository();
const claims = new ClaimRepository();

/** The backend's driver, guarded by the operation's lease (a stale worker makes no driver call). */
async function driverOf(deps: SnapshotOperationDeps, ctx: StepContext, backendId: BackendId) {
  const b = await backends.findById(deps.store.db, backendId);
  if (!b) throw new StowageError('BACKEND_NOT_FOUND', `backend ${backendId} no longer exists`, {});
  return { driver: ctx.guard(deps.drivers.get(b)), backendName: b.name };
}

async function loadSnapshot(deps: SnapshotOperationDeps, id: string): Promise<SnapshotRow> {
  const s = await snapshots.findById(deps.store.db, id);
  if (!s) throw new StowageError('SNAPSHOT_NOT_FOUND', `snapshot ${id} vanished`, {});
  return s;
}

async function loadVolume(deps: SnapshotOperationDeps, id: VolumeId): Promise<VolumeRow> {
  const v = await volumes.findById(deps.store.db, id);
  if (!v) throw new StowageError('VOLUME_NOT_FOUND', `volume ${id} vanished`, {});
  return v;
}

const handleOfVolume = (v: VolumeRow): DriverHandle => volumeHandle(v) ?? { id: v.id, format: v.format };
/** The stored snapshot handle, or one derived from the id (drivers key snapshots on our ids). */
const handleOfSnapshot = (s: SnapshotRow, v: VolumeRow): DriverHandle => readJson<DriverHandle | null>(s.driver_handle, null) ?? { id: s.id, format: v.format, volumeId: v.id };

/** Moves the snapshot to `to` with its event; the claim of a copied snapshot follows in the same transaction. */
async function setSnapshot(deps: SnapshotOperationDeps, ctx: StepContext, s: SnapshotRow, to: SnapshotState, patch: PatchOf<'snapshot'>, message: string): Promise<void> {
  await ctx.write(async (trx) => {
    await transition(trx, 'snapshot', { id: s.id, tenantId: s.tenant_id, to, patch, event: { actor: ctx.operation.actor, action: to, message, resourceName: s.name, operationId: ctx.operation.id } });
    // A held claim (copied snapshots) turns into the snapshot's own size, or is given back, with the state change.
    if (to === 'available') await claims.commit(trx, s.id, ctx.operation.id);
    else if (to === 'error') await claims.release(trx, s.id, ctx.operation.id);
  });
}

/** snapshot.create: capture on the backend (offloaded where it can), then mark available with the method used. */
export function snapshotCreateHandler(deps: SnapshotOperationDeps): OperationHandler {
  return {
    kind: 'snapshot.create',
    steps: [
      {
        name: 'capture',
        run: async (ctx) => {
          const s = await loadSnapshot(deps, ctx.operation.target_id);
          if (s.driver_handle) return;
          const v = await loadVolume(deps, s.volume_id);
          const { driver, backendName } = await driverOf(deps, ctx, s.backend_id);
          const handle = await requirePort(driver, 'snapshots', backendName).create(handleOfVolume(v), s.id, ctx.signal);
          const method = typeof handle.method === 'string' ? handle.method : 'backend';
          await ctx.write((trx) => snapshots.update(trx, s.id, { driver_handle: writeJson(handle), method, updated_at: nowIso() }));
          ctx.note(`method: ${method}`);
        },
      },
      {
        name: 'activate',
        run: async (ctx) => {
          const s = await loadSnapshot(deps, ctx.operation.target_id);
          if (s.state === 'available') return;
          await setSnapshot(deps, ctx, s, 'available', { state_reason: null }, `snapshot ${s.name} taken (${s.method ?? 'backend'})`);
        },
      },
    ],
    compensate: async (ctx, error) => {
      const s = await loadSnapshot(deps, ctx.operation.target_id);
      if (s.state === 'error') return;
      const v = await loadVolume(deps, s.volume_id);
      const { driver, backendName } = await driverOf(deps, ctx, s.backend_id);
      await requirePort(driver, 'snapshots', backendName).delete(handleOfSnapshot(s, v), ctx.signal).catch(() => undefined);
      await setSnapshot(deps, ctx, s, 'error', { state_reason: `snapshot failed: ${error.message}` }, `snapshot ${s.name} failed: ${error.message}`);
    },
    result: async (ctx) => ({ snapshotId: ctx.operation.target_id }),
  };
}

/** snapshot.delete: remove on the backend, then mark deleted. */
export function snapshotDeleteHandler(deps: SnapshotOperationDeps): OperationHandler {
  return {
    kind: 'snapshot.delete',
    steps: [
      {
        name: 'destroy',
        run: async (ctx) => {
          const s = await loadSnapshot(deps, ctx.operation.target_id);
          const v = await loadVolume(deps, s.volume_id);
          const { driver, backendName } = await driverOf(deps, ctx, s.backend_id);
          await requirePort(driver, 'snapshots', backendName).delete(handleOfSnapshot(s, v), ctx.signal);
        },
      },
      {
        name: 'finalize',
        run: async (ctx) => {
          const s = await loadSnapshot(deps, ctx.operation.target_id);
          if (s.state === 'deleted') return;
          await setSnapshot(deps, ctx, s, 'deleted', { deleted_at: nowIso() }, `snapshot ${s.name} deleted`);
        },
      },
    ],
    compensate: async (ctx, error) => {
      const s = await loadSnapshot(deps, ctx.operation.target_id);
      if (s.state !== 'deleting') return;
      await setSnapshot(deps, ctx, s, 'error', { state_reason: `delete failed: ${error.message}` }, `snapshot ${s.name} delete failed: ${error.message}`);
    },
  };
}

/** volume.revert: replace the volume's data with the snapshot's (on the backend), then mark available. */
export function volumeRevertHandler(deps: SnapshotOperationDeps): OperationHandler {
  return {
    kind: 'volume.revert',
    steps: [
      {
        name: 'revert',
        run: async (ctx) => {
          const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
          const s = await loadSnapshot(deps, String(ctx.input.snapshotId));
          const { driver, backendName } = await driverOf(deps, ctx, s.backend_id);
          await requirePort(driver, 'revert', backendName).revert(handleOfVolume(v), handleOfSnapshot(s, v), ctx.signal);
        },
      },
      {
        name: 'activate',
        run: async (ctx) => {
          const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
          if (v.state === 'available') return;
          await ctx.write((trx) => transition(trx, 'volume', {
            id: v.id, tenantId: v.tenant_id, to: 'available', patch: { state_reason: null },
            event: { actor: ctx.operation.actor, action: 'reverted', resourceName: v.name, message: `volume ${v.name} reverted`, operationId: ctx.operation.id },
          }));
        },
      },
    ],
    compensate: async (ctx, error) => {
      const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
      if (v.state !== 'reverting') return;
      await ctx.write((trx) => transition(trx, 'volume', {
        id: v.id, tenantId: v.tenant_id, to: 'error', patch: { state_reason: `revert failed: ${error.message}; check the data before use` },
        event: { actor: ctx.operation.actor, action: 'revert-failed', resourceName: v.name, message: `volume ${v.name} revert failed: ${error.message}`, operationId: ctx.operation.id },
      }));
    },
  };
}
