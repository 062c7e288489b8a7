import { defineOperation } from '../../operations/define-operation.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { detachSide, loadMigration, MigrationPhaseInput, setMigration } from './migration-steps.js';

/** migration.complete: disconnect and revoke the source side (the VM runs on the destination now), then completed. */
export function migrationComplete(deps: OperationDeps) {
  return defineOperation({
    kind: 'migration.complete',
    input: MigrationPhaseInput,
    steps: [
      { name: 'detach-source', run: async (ctx) => { const m = await loadMigration(deps, ctx.operation.target_id); await detachSide(deps, ctx, m.from_host_id, m.instance); } },
      { name: 'finalize', run: async (ctx) => { await setMigration(ctx, await loadMigration(deps, ctx.operation.target_id), 'completed', null); } },
    ],
    compensate: async (ctx, error) => { await setMigration(ctx, await loadMigration(deps, ctx.operation.target_id), 'error', `complete failed: ${error.message}; run complete again`); },
  });
}
