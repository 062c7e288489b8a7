import { defineOperation } from '../../operations/define-operation.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { detachSide, loadMigration, MigrationPhaseInput, setMigration } from './migration-steps.js';

/** migration.abort: undo the destination side (the source keeps its access), then aborted. */
export function migrationAbort(deps: OperationDeps) {
  return defineOperation({
    kind: 'migration.abort',
    input: MigrationPhaseInput,
    steps: [
      { name: 'detach-destination', run: async (ctx) => { const m = await loadMigration(deps, ctx.operation.target_id); await detachSide(deps, ctx, m.to_host_id, m.instance); } },
      { name: 'finalize', run: async (ctx) => { await setMigration(ctx, await loadMigration(deps, ctx.operation.target_id), 'aborted', null); } },
    ],
    compensate: async (ctx, error) => { await setMigration(ctx, await loadMigration(deps, ctx.operation.target_id), 'error', `abort failed: ${error.message}; run abort again`); },
  });
}
