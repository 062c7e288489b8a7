import { sleep, type CliContext } from './context.js';
import { CliError, formatCliError } from './errors.js';
import { emit, escapeTerminal, formatDuration, writeControl, type OutputFormat } from './output.js';

/** ANSI: cursor home, clear to end of line, clear to end of screen, hide and show the cursor. */
const HOME = '\x1b[H';
const CLEAR_EOL = '\x1b[K';
const CLEAR_EOS = '\x1b[J';
const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';

/** The flags every `… top` command takes. */
export interface TopFlags {
  interval: number;
  once?: boolean;
  output: OutputFormat;
}

/** What one `… top` command shows: its name, the list it fetches, the JSON key and the table. */
export interface TopView<T> {
  /** `backend top`, `node top`: the frame's title. */
  readonly title: string;
  /** The key of the list in each JSON line (`{"at", "<key>"}`). */
  readonly key: string;
  fetch(signal?: AbortSignal): Promise<T[]>;
  table(items: readonly T[], nowMs: number): string;
}

/** One frame: the text is escaped here because the frame's own control sequences must pass unescaped. */
function screen(lines: string): string {
  return `${HOME}${escapeTerminal(lines).split('\n').join(`${CLEAR_EOL}\n`)}${CLEAR_EOS}`;
}

/**
 * Runs a `… top` command: one snapshot with --once; on a terminal the table redrawn in place until
 * Ctrl-C (an API error shown in the frame, retried on the next refresh); otherwise one JSON line
 * per interval.
 */
export async function liveTop<T>(ctx: CliContext, url: string, o: TopFlags, view: TopView<T>): Promise<void> {
  if (o.once) {
    const items = await view.fetch();
    emit(ctx.stdout, o.output, items, () => view.table(items, ctx.now()));
    return;
  }
  const live = ctx.stdout.isTTY && o.output === 'table';
  const signal = ctx.interrupt();
  if (live) writeControl(ctx.stdout, HIDE_CURSOR);
  try {
    while (!signal.aborted) {
      const at = new Date(ctx.now()).toISOString();
      let items: T[] | null = null;
      let problem: string | null = null;
      try {
        items = await view.fetch(signal);
      } catch (err) {
        if (signal.aborted) break;
        if (!live || !(err instanceof CliError)) throw err;
        problem = formatCliError(err);
      }
      if (live) {
        const head = `stowage ${view.title}  ${url}  ${at.replace('T', ' ').slice(0, 19)} UTC  every ${formatDuration(o.interval)}  (Ctrl-C to quit)\n\n`;
        writeControl(ctx.stdout, screen(head + (problem ?? view.table(items ?? [], ctx.now()))));
      } else {
        ctx.stdout.write(`${JSON.stringify({ at, [view.key]: items ?? [] })}\n`);
      }
      await sleep(o.interval, signal);
    }
  } finally {
    if (live) writeControl(ctx.stdout, SHOW_CURSOR);
  }
}
