import type { Command } from 'commander';
import type { RetentionReport } from '../../core/schemas/retention-schema.js';
import type { CliContext } from '../context.js';
import { emit, formatTime, outputOption, renderTable, type OutputFormat } from '../output.js';

function keptFor(days: number): string {
  return days === 0 ? 'forever' : `${String(days)} days`;
}

/** The retention report: one line per table, then the policy's archive and the last sweep. */
export function retentionTable(r: RetentionReport): string {
  const s = r.lastSweep;
  const table = renderTable(['rows', 'kept for', 'kept', 'oldest kept', 'pruned last sweep', 'archived last sweep'], [
    ['operations (finished)', keptFor(r.policy.operationRetentionDays), String(r.operations.kept), formatTime(r.operations.oldestFinishedAt),
      s ? String(s.operationsPruned) : '-', s ? String(s.operationsArchived) : '-'],
    ['events', keptFor(r.policy.eventRetentionDays), String(r.events.kept), formatTime(r.events.oldestAt),
      s ? String(s.eventsPruned) : '-', s ? String(s.eventsArchived) : '-'],
  ]);
  const archive = r.policy.archive ? `archive: ${r.policy.archiveDir}` : 'archive: off (rows are deleted without a copy)';
  const last = s ? `last sweep: ${formatTime(s.at)}${s.complete ? '' : ' (stopped before the end; the next sweep goes on)'}` : 'last sweep: none yet';
  return `${table}${archive}\n${last}\n`;
}

/** `stowage retention …`: how long finished operations and events are kept, and sweeping now. */
export function register(program: Command, ctx: CliContext): void {
  const retention = program.command('retention').description('Retention of finished operations and events: the policy, what is kept, and sweeps (admins)');

  retention.command('show')
    .description('Show the retention policy, how many operations and events are kept, the oldest kept, and the last sweep')
    .addOption(outputOption())
    .addHelpText('after', `
The policy is set on the server: operationRetentionDays (STOWAGE_OPERATION_RETENTION_DAYS, default 30),
eventRetentionDays (STOWAGE_EVENT_RETENTION_DAYS, default 90), 0 = kept forever; retentionArchive
(STOWAGE_RETENTION_ARCHIVE, default true) copies rows to NDJSON files in <dataDir>/archive first.
Only succeeded and failed operations are ever deleted.

Examples:
  $ stowage retention show
  $ stowage retention show -o json | jq .lastSweep
`)
    .action(async (o: { output: OutputFormat }, cmd: Command) => {
      const r = await ctx.client(cmd).showRetention();
      emit(ctx.stdout, o.output, r, () => retentionTable(r));
    });

  retention.command('sweep')
    .description('Run one retention sweep now (the server also sweeps every hour), then show the report')
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage retention sweep
  $ stowage retention sweep -o json | jq '.lastSweep.operationsPruned'
`)
    .action(async (o: { output: OutputFormat }, cmd: Command) => {
      const r = await ctx.client(cmd).sweepRetention();
      emit(ctx.stdout, o.output, r, () => retentionTable(r));
    });
}
