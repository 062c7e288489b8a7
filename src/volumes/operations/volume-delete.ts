import { Type } from '@sinclair/typebox';
import { idOf } from '../../core/ids.js';
import { VOLUME_STATES } from '../../core/states.js';
import { defineOperation, oneOf } from '../../operations/define-operation.js';
import type { StepContext } from '../../operations/handler.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { nowIso } from '../../store/json.js';
import type { VolumeRow } from '../../store/schema.js';
import { moveVolume } from './move-volume.js';
import { loadVolume, volumeOnBackend } from './volume-driver.js';

/**
 * Removes a volume's data on its backend; idempotent (the driver's delete of something gone
 * succeeds). A backend that cannot be reached fails with BACKEND_UNAVAILABLE, which the engine retries.
 */
export async function destroyVolumeData(deps: OperationDeps, ctx: StepContext<object>, v: VolumeRow): Promise<void> {
  if (!v.backend_id) return;
  const { driver, handle } = await volumeOnBackend(deps, ctx, v);
  await driver.deleteVolume(handle, ctx.signal);
}

/** Marks a volume whose data is gone as deleted (the row stays for history); nothing when it already is. */
export async function markVolumeDeleted(ctx: StepContext<object>, v: VolumeRow): Promise<void> {
  if (v.state === 'deleted') return;
  await moveVolume(ctx, v, 'deleted', { deleted_at: nowIso(), state_reason: null }, `volume ${v.name} deleted`, 'deleted');
}

/** volume.delete's input: the state the volume was deleted from (kept for the journal). */
export const VolumeDeleteInput = Type.Object({ previousState: Type.Optional(oneOf(VOLUME_STATES)) });

/** volume.delete: remove the data on the backend, then mark deleted (the row stays for history). */
export function volumeDelete(deps: OperationDeps) {
  return defineOperation({
    kind: 'volume.delete',
    input: VolumeDeleteInput,
    steps: [
      {
        name: 'destroy',
        run: async (ctx) => {
          await destroyVolumeData(deps, ctx, await loadVolume(deps, idOf('volume', ctx.operation.target_id)));
        },
      },
      {
        name: 'finalize',
        run: async (ctx) => {
          await markVolumeDeleted(ctx, await loadVolume(deps, idOf('volume', ctx.operation.target_id)));
        },
      },
    ],
    compensate: async (ctx, error) => {
      const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
      if (v.state !== 'deleting') return;
      await moveVolume(ctx, v, 'error', { state_reason: `delete failed: ${error.message}; run \`stowage volume delete ${v.name}\` again once the backend is back` }, `volume ${v.name} delete failed: ${error.message}`, 'delete-failed');
    },
    result: async (ctx) => ({ volumeId: ctx.operation.target_id }),
  });
}
