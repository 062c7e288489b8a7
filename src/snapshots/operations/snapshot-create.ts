import { Type } from '@sinclair/typebox';
import { requirePort } from '../../drivers/sdk/ports.js';
import { defineOperation } from '../../operations/define-operation.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { nowIso, writeJson } from '../../store/json.js';
import { backendDriver, handleOfVolume, loadVolume } from '../../volumes/operations/volume-driver.js';
import { handleOfSnapshot, loadSnapshot, setSnapshot } from './snapshot-steps.js';

/** snapshot.create's input: the volume it captures. */
export const SnapshotCreateInput = Type.Object({ volumeId: Type.String() });

/** snapshot.create: capture on the backend (offloaded where it can), then mark available with the method used. */
export function snapshotCreate(deps: OperationDeps) {
  return defineOperation({
    kind: 'snapshot.create',
    input: SnapshotCreateInput,
    steps: [
      {
        name: 'capture',
        run: async (ctx) => {
          const s = await loadSnapshot(deps, ctx.operation.target_id);
          if (s.driver_handle) return;
          const v = await loadVolume(deps, s.volume_id);
          const { driver, backend } = await backendDriver(deps, ctx, s.backend_id);
          const handle = await requirePort(driver, 'snapshots', backend.name).create(handleOfVolume(v), s.id, ctx.signal);
          const method = typeof handle.method === 'string' ? handle.method : 'backend';
          await ctx.write((trx) => deps.repos.snapshots.update(trx, s.id, { driver_handle: writeJson(handle), method, updated_at: nowIso() }));
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
      const { driver, backend } = await backendDriver(deps, ctx, s.backend_id);
      await requirePort(driver, 'snapshots', backend.name).delete(handleOfSnapshot(s, v), ctx.signal).catch(() => undefined);
      await setSnapshot(deps, ctx, s, 'error', { state_reason: `snapshot failed: ${error.message}` }, `snapshot ${s.name} failed: ${error.message}`);
    },
    result: async (ctx) => ({ snapshotId: ctx.operation.target_id }),
  });
}
