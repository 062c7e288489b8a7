import type { Command } from 'commander';
import type { Backend } from '../../core/schemas/backend-schema.js';
import { sleep, type CliContext } from '../context.js';
import { CliError, formatCliError } from '../errors.js';
import { ago, bar, emit, escapeTerminal, formatDuration, outputOption, percent, renderTable, size, writeControl, type OutputFormat } from '../output.js';
import { durationArg } from '../parse.js';

interface TopFlags {
  interval: number;
  once?: boolean;
  output: OutputFormat;
}

/** ANSI: cursor home, clear to end of line, clear to end of screen, hide and show the cursor. */
const HOME = '\x1b[H';
const CLEAR_EOL = '\x1b[K';
const CLEAR_EOS = '\x1b[J';
const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';

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

/** One frame: the text is escaped here because the frame's own control sequences must pass unescaped. */
function screen(lines: string): string {
  return `${HOME}${escapeTerminal(lines).split('\n').join(`${CLEAR_EOL}\n`)}${CLEAR_EOS}`;
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
      if (o.once) {
        const items = await client.listBackends();
        emit(ctx.stdout, o.output, items, () => topTable(items, ctx.now()));
        return;
      }
      const live = ctx.stdout.isTTY && o.output === 'table';
      const signal = ctx.interrupt();
      if (live) writeControl(ctx.stdout, HIDE_CURSOR);
      try {
        while (!signal.aborted) {
          const at = new Date(ctx.now()).toISOString();
          let items: Backend[] | null = null;
          let problem: string | null = null;
          try {
            items = await client.listBackends(signal);
          } catch (err) {
            if (signal.aborted) break;
            if (!live || !(err instanceof CliError)) throw err;
            problem = formatCliError(err);
          }
          if (live) {
            const head = `stowage backend top  ${client.url}  ${at.replace('T', ' ').slice(0, 19)} UTC  every ${formatDuration(o.interval)}  (Ctrl-C to quit)\n\n`;
            writeControl(ctx.stdout, screen(head + (problem ?? topTable(items ?? [], ctx.now()))));
          } else {
            ctx.stdout.write(`${JSON.stringify({ at, backends: items ?? [] })}\n`);
          }
          await sleep(o.interval, signal);
        }
      } finally {
        if (live) writeControl(ctx.stdout, SHOW_CURSOR);
      }
    });
}
