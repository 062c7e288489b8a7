import { StowageError } from '../../core/errors.js';
import type { SnapshotState } from '../../core/states.js';
import type { DriverHandle } from '../../drivers/sdk/types.js';
import type { StepContext } from '../../operations/handler.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { readJson } from '../../store/json.js';
import type { SnapshotRow, VolumeRow } from '../../store/schema.js';
import { transition, type PatchOf } from '../../store/transition.js';

type Deps = Pick<OperationDeps, 'store' | 'repos'>;

/** The snapshot row; SNAPSHOT_NOT_FOUND when it is gone. */
export async function loadSnapshot(deps: Deps, id: string): Promise<SnapshotRow> {
  const s = await deps.repos.snapshots.findById(deps.store.db, id);
  if (!s) throw new StowageError('SNAPSHOT_NOT_FOUND', `snapshot ${id} vanished`, {});
  return s;
}

/** The stored snapshot handle, or one derived from the id (drivers key snapshots on our ids). */
export function handleOfSnapshot(s: SnapshotRow, v: VolumeRow): DriverHandle {
  return readJson<DriverHandle | null>(s.driver_handle, null) ?? { id: s.id, format: v.format, volumeId: v.id };
}

/** Moves the snapshot to `to` with its event; the claim of a copied snapshot follows in the same transaction. */
export async function setSnapshot(deps: Deps, ctx: StepContext<object>, s: SnapshotRow, to: SnapshotState, patch: PatchOf<'snapshot'>, message: string): Promise<void> {
  await ctx.write(async (trx) => {
    await transition(trx, 'snapshot', { id: s.id, tenantId: s.tenant_id, to, patch, event: { actor: ctx.operation.actor, action: to, message, resourceName: s.name, operationId: ctx.operation.id } });
    // A held claim (copied snapshots) turns into the snapshot's own size, or is given back, with the state change.
    if (to === 'available') await deps.repos.claims.commit(trx, s.id, ctx.operation.id);
    else if (to === 'error') await deps.repos.claims.release(trx, s.id, ctx.operation.id);
  });
}
