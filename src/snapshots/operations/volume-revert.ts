import { Type } from '@sinclair/typebox';
import { idOf } from '../../core/ids.js';
import { requirePort } from '../../drivers/sdk/ports.js';
import { defineOperation } from '../../operations/define-operation.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { moveVolume } from '../../volumes/operations/move-volume.js';
import { backendDriver, handleOfVolume, loadVolume } from '../../volumes/operations/volume-driver.js';
import { handleOfSnapshot, loadSnapshot } from './snapshot-steps.js';

/** volume.revert's input: the snapshot whose data comes back. */
export const VolumeRevertInput = Type.Object({ snapshotId: Type.String() });

/** volume.revert: replace the volume's data with the snapshot's (on the backend), then mark available. */
export function volumeRevert(deps: OperationDeps) {
  return defineOperation({
    kind: 'volume.revert',
    input: VolumeRevertInput,
    steps: [
      {
        name: 'revert',
        run: async (ctx) => {
          const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
          const s = await loadSnapshot(deps, ctx.input.snapshotId);
          const { driver, backend } = await backendDriver(deps, ctx, s.backend_id);
          await requirePort(driver, 'revert', backend.name).revert(handleOfVolume(v), handleOfSnapshot(s, v), ctx.signal);
        },
      },
      {
        name: 'activate',
        run: async (ctx) => {
          const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
          if (v.state === 'available') return;
          await moveVolume(ctx, v, 'available', { state_reason: null }, `volume ${v.name} reverted`, 'reverted');
        },
      },
    ],
    compensate: async (ctx, error) => {
      const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
      if (v.state !== 'reverting') return;
      await moveVolume(ctx, v, 'error', { state_reason: `revert failed: ${error.message}; check the data before use` }, `volume ${v.name} revert failed: ${error.message}`, 'revert-failed');
    },
  });
}
