import { defineOperation } from '../../operations/define-operation.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { ensureGrant, setAttachmentState, waitConnected } from '../attachment-steps.js';
import { detachSide, loadMigration, MigrationPhaseInput, setMigration } from './migration-steps.js';

/** migration.start: grant and connect every volume of the instance on the destination, then ready. */
export function migrationStart(deps: OperationDeps) {
  return defineOperation({
    kind: 'migration.start',
    input: MigrationPhaseInput,
    steps: [
      {
        name: 'attach-destination',
        run: async (ctx) => {
          const m = await loadMigration(deps, ctx.operation.target_id);
          const dest = await deps.migrations().ensureDestination(m, ctx);
          for (const a of dest) {
            if (a.state === 'attached') continue;
            await ensureGrant(deps, a, ctx);
            await setAttachmentState(ctx, a, 'connecting', 'migration: access granted on the destination');
            const connected = await waitConnected(deps, a.id, ctx.signal);
            await setAttachmentState(ctx, connected, 'attached', `migration: attached on the destination as ${connected.device_id ?? '?'}`);
          }
        },
      },
      { name: 'ready', run: async (ctx) => { await setMigration(ctx, await loadMigration(deps, ctx.operation.target_id), 'ready', null); } },
    ],
    compensate: async (ctx, error) => {
      const m = await loadMigration(deps, ctx.operation.target_id);
      await detachSide(deps, ctx, m.to_host_id, m.instance);
      await setMigration(ctx, m, 'aborted', `start failed: ${error.message}`);
    },
  });
}
