import type { Command } from 'commander';
import type { Backend } from '../../core/schemas/backend-schema.js';
import type { CliContext } from '../context.js';
import { liveTop, type TopFlags } from '../live-top.js';
import { ago, bar, outputOption, percent, renderTable, size } from '../output.js';
import { durationArg } from '../parse.js';

/** Used fraction of the physical capacity (0 when unknown). */
export function usedFraction(b: Backend): number {
  return b.capacity.totalBytes > 0 ? (b.capacity.totalBytes - b.capacity.freeBytes) / b.capacity.totalBytes : 0;
}

/** The `backend top` table: state, capacity with a bar of the physical use, volume count, probe age. */
export function topTable(items: readonly Backend[], nowMs: number): string {
  return renderTable(
    ['name', 'state', 'used', '', 'total', 'free', 'provisioned', 'usable', 'volumes', 'probed'],
    items.map((b) => [b.name, b.state, bar(usedFraction(b)), percent(usedFraction(b)), size(b.capacity.totalBytes), size(b.capacity.freeBytes),
      size(b.capacity.provisionedBytes), size(b.capacity.usableBytes), String(b.volumeCount), ago(b.lastProbeAt, nowMs)]),
  );
}

/** Registers `stowage backend top`. */
export function registerTop(backend: Command, ctx: CliContext): void {
  backend.command('top')
    .description('Live capacity of every backend, refreshed in place (JSON lines when not on a terminal)')
    .option('--interval <duration>', 'time between refreshes, e.g. 500ms, 2s, 1m', durationArg, 2000)
    .option('--once', 'print one snapshot and exit')
    .addOption(outputOption())
    .addHelpText('after', `
On a terminal the table is redrawn in place until Ctrl-C. With -o json, or when stdout is not a
terminal, one JSON line {"at", "backends"} is printed per interval instead.

Examples:
  $ stowage backend top
  $ stowage backend top --interval 5s
  $ stowage backend top --once
  $ stowage backend top -o json --interval 10s >> capacity.jsonl
`)
    .action(async (o: TopFlags, cmd: Command) => {
      const client = ctx.client(cmd);
      await liveTop(ctx, client.url, o, { title: 'backend top', key: 'backends', fetch: (signal) => client.listBackends(signal), table: topTable });
    });
}
