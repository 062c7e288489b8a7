import { Option, type Command } from 'commander';
import type { Operation } from '../../core/schemas/operation-schema.js';
import { OPERATION_STATES, type OperationState } from '../../core/states.js';
import type { CliContext } from '../context.js';
import { emit, formatDuration, formatTime, outputOption, renderFields, renderTable, type OutputFormat } from '../output.js';
import { durationArg, intArg } from '../parse.js';
import { DEFAULT_WAIT_TIMEOUT_MS, assertSucceeded, waitForOperation } from '../wait.js';
import { allTenantsOption, tablesByTenant } from '../tenant-flags.js';

function took(op: Operation): string {
  const start = Date.parse(op.createdAt);
  const end = op.finishedAt ? Date.parse(op.finishedAt) : NaN;
  return Number.isNaN(start) || Number.isNaN(end) ? '-' : formatDuration(end - start);
}

/** The operation list table. */
export function operationTable(items: readonly Operation[]): string {
  return renderTable(['id', 'kind', 'target', 'state', 'step', 'actor', 'created', 'took'],
    items.map((op) => [op.id, op.kind, op.targetId, op.waitingReason ? `${op.state} (waiting)` : op.state, op.step ?? '-', op.actor, formatTime(op.createdAt), took(op)]));
}

/** Every field of one operation: steps with times, error, result. */
export function operationFields(op: Operation): string {
  return renderFields([
    ['ID', op.id],
    ['Kind', op.kind],
    ['Target', `${op.targetType} ${op.targetId}`],
    ['State', op.state],
    ['Step', op.step ?? '-'],
    ...(op.waitingReason ? [['Waiting', op.waitingReason] as [string, string]] : []),
    ['Steps done', op.stepsDone.length ? op.stepsDone.map((s) => `${formatTime(s.at)}  ${s.name}${s.note ? `: ${s.note}` : ''}`).join('\n') : '-'],
    ['Progress', op.progress === null ? '-' : `${Math.round(op.progress * 100)}%`],
    ['Attempts', String(op.attempts)],
    ['Error', op.error ? `${op.error.code}: ${op.error.message}` : '-'],
    ['Result', op.result ? JSON.stringify(op.result) : '-'],
    ['Actor', op.actor],
    ['Created', formatTime(op.createdAt)],
    ['Finished', op.finishedAt ? `${formatTime(op.finishedAt)} (took ${took(op)})` : '-'],
  ]);
}

/** `stowage operation …`: list, show, wait. */
export function register(program: Command, ctx: CliContext): void {
  const operation = program.command('operation').alias('op').description('Inspect and wait for operations (the journal of every change)');

  operation.command('list')
    .alias('ls')
    .description('List operations, newest first')
    .addOption(new Option('--state <state>', 'only operations in this state').choices(OPERATION_STATES))
    .option('--target <id>', 'only operations on this resource id')
    .option('--limit <n>', 'at most this many', intArg(1, 1000), 50)
    .addOption(allTenantsOption())
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage operation list
  $ stowage operation list --state failed
  $ stowage operation list --target vol-abcdefghijklmnopqrst -o json
`)
    .action(async (o: { state?: OperationState; target?: string; limit: number; allTenants?: boolean; output: OutputFormat }, cmd: Command) => {
      const client = ctx.client(cmd);
      const items = await client.listOperations({ state: o.state, target: o.target, limit: o.limit, allTenants: o.allTenants });
      const text = await tablesByTenant(client, o.output, o.allTenants, items, operationTable, 'no operations\n');
      emit(ctx.stdout, o.output, items, () => text);
    });

  operation.command('show')
    .description('Show one operation with its steps')
    .argument('<id>', 'operation id')
    .addOption(outputOption())
    .addHelpText('after', `
Example:
  $ stowage operation show op-abcdefghijklmnopqrst
`)
    .action(async (id: string, o: { output: OutputFormat }, cmd: Command) => {
      const op = await ctx.client(cmd).getOperation(id);
      emit(ctx.stdout, o.output, op, () => operationFields(op));
    });

  operation.command('wait')
    .description('Wait for an operation to finish, showing its progress; exits non-zero if it failed')
    .argument('<id>', 'operation id')
    .option('--timeout <duration>', 'longest wait, e.g. 30s or 10m', durationArg, DEFAULT_WAIT_TIMEOUT_MS)
    .addOption(outputOption())
    .addHelpText('after', `
Exit status: 0 when it succeeded, 1 when it failed (its error printed as code: message) or the
timeout passed (TIMEOUT; the operation keeps running).

Examples:
  $ stowage operation wait op-abcdefghijklmnopqrst
  $ stowage operation wait op-abcdefghijklmnopqrst --timeout 30s -o json
`)
    .action(async (id: string, o: { timeout: number; output: OutputFormat }, cmd: Command) => {
      const client = ctx.client(cmd);
      const first = await client.getOperation(id);
      const done = await waitForOperation(ctx, client, first, { timeoutMs: o.timeout });
      emit(ctx.stdout, o.output, done, () => operationFields(done));
      assertSucceeded(done);
    });
}
