import { Type } from '@sinclair/typebox';
import { requirePort } from '../../drivers/sdk/ports.js';
import { defineOperation } from '../../operations/define-operation.js';
import type { StepContext } from '../../operations/handler.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { nowIso } from '../../store/json.js';
import type { SnapshotRow } from '../../store/schema.js';
import { backendDriver, loadVolume } from '../../volumes/operations/volume-driver.js';
import { handleOfSnapshot, loadSnapshot, setSnapshot } from './snapshot-steps.js';

/** Removes a snapshot on its backend; idempotent (deleting one already gone succeeds). */
export async function destroySnapshotData(deps: OperationDeps, ctx: StepContext<object>, s: SnapshotRow): Promise<void> {
  const v = await loadVolume(deps, s.volume_id);
  const { driver, backend } = await backendDriver(deps, ctx, s.backend_id);
  await requirePort(driver, 'snapshots', backend.name).delete(handleOfSnapshot(s, v), ctx.signal);
}

/** Marks a snapshot whose data is gone as deleted; nothing when it already is. */
export async function markSnapshotDeleted(deps: OperationDeps, ctx: StepContext<object>, s: SnapshotRow): Promise<void> {
  if (s.state === 'deleted') return;
  await setSnapshot(deps, ctx, s, 'deleted', { deleted_at: nowIso() }, `snapshot ${s.name} deleted`);
}

/** snapshot.delete's input: nothing beyond its target. */
export const SnapshotDeleteInput = Type.Object({});

/** snapshot.delete: remove on the backend, then mark deleted. */
export function snapshotDelete(deps: OperationDeps) {
  return defineOperation({
    kind: 'snapshot.delete',
    input: SnapshotDeleteInput,
    steps: [
      {
        name: 'destroy',
        run: async (ctx) => {
          await destroySnapshotData(deps, ctx, await loadSnapshot(deps, ctx.operation.target_id));
        },
      },
      {
        name: 'finalize',
        run: async (ctx) => {
          await markSnapshotDeleted(deps, ctx, await loadSnapshot(deps, ctx.operation.target_id));
        },
      },
    ],
    compensate: async (ctx, error) => {
      const s = await loadSnapshot(deps, ctx.operation.target_id);
      if (s.state !== 'deleting') return;
      await setSnapshot(deps, ctx, s, 'error', { state_reason: `delete failed: ${error.message}` }, `snapshot ${s.name} delete failed: ${error.message}`);
    },
  });
}
