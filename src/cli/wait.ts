import type { Operation } from '../core/schemas/operation-schema.js';
import { OPERATION_STATE_TABLE } from '../core/states.js';
import type { StowageClient } from './client.js';
import type { CliContext } from './context.js';
import { CliError } from './errors.js';
import { formatDuration, writeControl, type OutStream } from './output.js';

/** How long one poll asks the server to hold the answer, in ms. */
export const POLL_WAIT_MS = 1000;
/** Default longest wait for an operation, in ms (10 minutes). */
export const DEFAULT_WAIT_TIMEOUT_MS = 600_000;

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'] as const;
const SPIN_MS = 100;

/** Carriage return and ANSI erase-line: the spinner line is redrawn in place. */
const CLEAR_LINE = '\r\x1b[2K';

/** True once an operation can no longer change. */
export function isFinished(op: Operation): boolean {
  return !OPERATION_STATE_TABLE[op.state].active;
}

function describe(op: Operation): string {
  const parts = [op.state === 'running' || op.state === 'queued' ? (op.step ? `step ${op.step}` : op.state) : op.state];
  if (op.state === 'queued' && op.step) parts[0] = `queued (first step ${op.step})`;
  if (op.stepsDone.length) parts.push(`${op.stepsDone.length} step${op.stepsDone.length === 1 ? '' : 's'} done`);
  if (op.progress !== null && !isFinished(op)) parts.push(`${Math.round(op.progress * 100)}%`);
  if (op.attempts > 1) parts.push(`attempt ${op.attempts}`);
  if (op.waitingReason) parts.push(op.waitingReason);
  return parts.join(', ');
}

/**
 * Shows an operation's progress on stderr: on a terminal a spinner line redrawn in place, otherwise
 * one plain line whenever the state or step changes.
 */
export class ProgressDisplay {
  private frame = 0;
  private last = '';
  private timer: NodeJS.Timeout | null = null;
  private current: Operation | null = null;

  constructor(private readonly out: OutStream, private readonly label: string, private readonly startedMs: number, private readonly now: () => number) {}

  /** Records the latest state of the operation and redraws. */
  update(op: Operation): void {
    this.current = op;
    if (this.out.isTTY) {
      this.timer ??= setInterval(() => { this.frame++; this.draw(); }, SPIN_MS);
      this.draw();
      return;
    }
    if (isFinished(op)) return;
    const line = `${this.label}: ${describe(op)}`;
    if (line !== this.last) this.out.write(`${line}\n`);
    this.last = line;
  }

  private draw(): void {
    if (!this.current) return;
    const spin = SPINNER[this.frame % SPINNER.length] ?? '';
    writeControl(this.out, CLEAR_LINE);
    this.out.write(`${spin} ${this.label}: ${describe(this.current)}  ${formatDuration(this.now() - this.startedMs)}`);
  }

  /** Stops redrawing and prints the outcome line (or nothing, when `message` is null). */
  finish(message: string | null): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.out.isTTY) writeControl(this.out, CLEAR_LINE);
    if (message !== null) this.out.write(`${message}\n`);
  }
}

/**
 * Polls `GET /v1/operations/:id?waitMs=1000` until the operation finishes, showing progress on
 * stderr. Returns the finished operation (succeeded or failed: the caller decides); throws TIMEOUT
 * after `timeoutMs`, and exits 130 with a hint when interrupted (the operation keeps running).
 */
export async function waitForOperation(ctx: CliContext, client: StowageClient, op: Operation, opts: { timeoutMs: number; label?: string }): Promise<Operation> {
  const started = ctx.now();
  const label = opts.label ?? `${op.kind} ${op.id}`;
  const display = new ProgressDisplay(ctx.stderr, label, started, () => ctx.now());
  const signal = ctx.interrupt();
  let current = op;
  try {
    display.update(current);
    while (!isFinished(current)) {
      if (signal.aborted) throw interrupted(current);
      const left = started + opts.timeoutMs - ctx.now();
      if (left <= 0) {
        throw new CliError('TIMEOUT', `operation ${current.id} is still ${current.state} after ${formatDuration(opts.timeoutMs)}`, {
          hints: [`it keeps running; wait again with \`stowage operation wait ${current.id}\``],
        });
      }
      try {
        current = await client.getOperation(current.id, Math.min(POLL_WAIT_MS, left), signal);
      } catch (err) {
        if (signal.aborted) throw interrupted(current);
        throw err;
      }
      display.update(current);
    }
  } catch (err) {
    display.finish(null);
    throw err;
  }
  const verb = `${current === op ? 'had already ' : ''}${current.state}`;
  const took = current === op ? '' : ` after ${formatDuration(ctx.now() - started)}`;
  const steps = current.stepsDone.map((s) => s.name).join(', ');
  display.finish(current.state === 'succeeded'
    ? `✓ ${label} ${verb}${took}${steps ? ` (steps: ${steps})` : ''}`
    : `✗ ${label} ${verb}${took}${current.step ? ` at step ${current.step}` : ''}`);
  return current;
}

function interrupted(op: Operation): CliError {
  return new CliError(null, `stopped waiting; operation ${op.id} keeps running`, { exitCode: 130, hints: [`wait again with \`stowage operation wait ${op.id}\``] });
}

/** Throws the failed operation's error as `code: message` (exit 1); returns a succeeded one. */
export function assertSucceeded(op: Operation): Operation {
  if (op.state === 'failed') {
    throw new CliError(op.error?.code ?? 'INTERNAL', op.error?.message ?? `operation ${op.id} failed`, { details: { ...(op.error?.details ?? {}), operationId: op.id } });
  }
  return op;
}
