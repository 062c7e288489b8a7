import { Type } from '@sinclair/typebox';
import { requirePort } from '../../drivers/sdk/ports.js';
import { defineOperation } from '../../operations/define-operation.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { nowIso } from '../../store/json.js';
import { backendDriver, loadVolume } from '../../volumes/operations/volume-driver.js';
import { handleOfSnapshot, loadSnapshot, setSnapshot } from './snapshot-steps.js';

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
          const s = await loadSnapshot(deps, ctx.operation.target_id);
          const v = await loadVolume(deps, s.volume_id);
          const { driver, backend } = await backendDriver(deps, ctx, s.backend_id);
          await requirePort(driver, 'snapshots', backend.name).delete(handleOfSnapshot(s, v), ctx.signal);
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
  });
}
