import { Type } from '@sinclair/typebox';
import { idOf } from '../../core/ids.js';
import { formatSize } from '../../core/sizes.js';
import { defineOperation } from '../../operations/define-operation.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { moveVolume } from './move-volume.js';
import { loadVolume, volumeOnBackend } from './volume-driver.js';

/** volume.resize's input: the size asked for, and the size to go back to if the grow fails. */
export const VolumeResizeInput = Type.Object({ sizeBytes: Type.Integer({ minimum: 0 }), previousSizeBytes: Type.Integer({ minimum: 0 }) });

/** volume.resize: grow on the backend, then mark available; on failure the old size comes back. */
export function volumeResize(deps: OperationDeps) {
  const { claims } = deps.repos;
  return defineOperation({
    kind: 'volume.resize',
    input: VolumeResizeInput,
    steps: [
      {
        name: 'grow',
        run: async (ctx) => {
          const { driver, handle } = await volumeOnBackend(deps, ctx, await loadVolume(deps, idOf('volume', ctx.operation.target_id)));
          await driver.resizeVolume(handle, ctx.input.sizeBytes, ctx.signal);
        },
      },
      {
        name: 'activate',
        run: async (ctx) => {
          const v = await loadVolume(deps, idOf('volume', ctx.operation.target_id));
          if (v.state === 'available') return;
          const { sizeBytes } = ctx.input;
          // The new size becomes provisioned as the growth claim is committed: one transaction.
          await moveVolume(ctx, v, 'available', { size_bytes: sizeBytes, state_reason: null }, `volume ${v.name} is now ${formatSize(sizeBytes)}`, 'resized',
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
      await moveVolume(ctx, v, 'available', { size_bytes: ctx.input.previousSizeBytes, state_reason: `resize to ${formatSize(ctx.input.sizeBytes)} failed: ${error.message}` }, `volume ${v.name} resize failed: ${error.message}`, 'resize-failed',
        (trx) => claims.release(trx, v.id, ctx.operation.id));
    },
    result: async (ctx) => ({ volumeId: ctx.operation.target_id, sizeBytes: ctx.input.sizeBytes }),
  });
}
