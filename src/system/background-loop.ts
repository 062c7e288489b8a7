import type { Logger } from 'pino';

/** One pass of a background task; it should stop early when `signal` aborts (stop or timeout). */
export type LoopPass = (signal: AbortSignal) => Promise<unknown>;

/** How a background loop runs; every duration in milliseconds. */
export interface BackgroundLoopOptions {
  /** Kebab-case name, for logs. */
  readonly name: string;
  /** Time between the end of one pass and the start of the next, before jitter. */
  readonly intervalMs: number;
  /**
   * Fraction (0–1) by which each wait is shortened at random (default 0.1), so replicas started
   * together do not sweep in lockstep; the wait never exceeds `intervalMs`.
   */
  readonly jitter?: number;
  /** A pass still running after this long has its signal aborted (and is logged). */
  readonly timeoutMs: number;
  /** Run the first pass at once on `start()` instead of after one interval (default false). */
  readonly runAtStart?: boolean;
  /** After `stop()` aborts a pass that outlived the drain, how long to still wait for it (default 1000). */
  readonly abortGraceMs?: number;
  readonly logger: Pick<Logger, 'warn'>;
  /** Source of randomness for the jitter (tests pin it). */
  readonly random?: () => number;
}

/** What `stop()` found: whether a pass was running, and whether it ended before `stop()` returned. */
export interface LoopStopResult {
  readonly name: string;
  readonly wasRunning: boolean;
  readonly drained: boolean;
}

/**
 * The one scaffold for every periodic background task (sweeps, probes, reconcilers): one pass at a
 * time, each with its own timeout and AbortSignal; a failed pass is logged and the loop goes on;
 * `stop()` schedules nothing more and drains the running pass before the caller closes the store.
 */
export class BackgroundLoop {
  private timer: NodeJS.Timeout | null = null;
  private current: Promise<void> | null = null;
  private controller: AbortController | null = null;
  private stopping = false;
  private started = false;

  constructor(private readonly pass: LoopPass, private readonly options: BackgroundLoopOptions) {
    if (!(options.intervalMs > 0) || !(options.timeoutMs > 0)) throw new RangeError(`loop ${options.name}: interval and timeout must be positive`);
    const jitter = options.jitter ?? 0.1;
    if (!(jitter >= 0 && jitter <= 1)) throw new RangeError(`loop ${options.name}: jitter must be between 0 and 1`);
  }

  /** The loop's name. */
  get name(): string {
    return this.options.name;
  }

  /** True while a pass is running. */
  get busy(): boolean {
    return this.current !== null;
  }

  /** Starts scheduling passes; a second call, or a call after `stop()`, does nothing. */
  start(): void {
    if (this.started || this.stopping) return;
    this.started = true;
    this.schedule(this.options.runAtStart === true ? 0 : this.nextDelayMs());
  }

  /**
   * Stops scheduling, waits up to `drainMs` for the running pass, then aborts it and waits a short
   * grace more. Resolves when the pass has ended (or the grace is over); calling it again waits again.
   */
  async stop(drainMs: number): Promise<LoopStopResult> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const running = this.current;
    if (!running) return { name: this.name, wasRunning: false, drained: true };
    let drained = await settlesWithin(running, drainMs);
    if (!drained) {
      this.options.logger.warn({ loop: this.name, drainMs }, 'background pass outlived the drain; aborting it');
      this.controller?.abort(new Error(`loop ${this.name} is stopping`));
      drained = await settlesWithin(running, this.options.abortGraceMs ?? 1000);
    }
    return { name: this.name, wasRunning: true, drained };
  }

  private nextDelayMs(): number {
    const jitter = this.options.jitter ?? 0.1;
    const random = this.options.random ?? Math.random;
    return Math.max(0, Math.round(this.options.intervalMs * (1 - jitter * random())));
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      this.current = this.runPass().finally(() => {
        this.current = null;
        if (!this.stopping) this.schedule(this.nextDelayMs());
      });
    }, delayMs);
    // A pending pass must not keep a process alive that has nothing else to do.
    this.timer.unref();
  }

  private async runPass(): Promise<void> {
    const controller = new AbortController();
    this.controller = controller;
    const timeout = setTimeout(() => {
      this.options.logger.warn({ loop: this.name, timeoutMs: this.options.timeoutMs }, 'background pass timed out; aborting it');
      controller.abort(new Error(`loop ${this.name}: pass timed out after ${String(this.options.timeoutMs)} ms`));
    }, this.options.timeoutMs);
    timeout.unref();
    try {
      await this.pass(controller.signal);
    } catch (err) {
      this.options.logger.warn({ err, loop: this.name }, 'background pass failed');
    } finally {
      clearTimeout(timeout);
      this.controller = null;
    }
  }
}

/** True when `p` settles (resolves or rejects) within `ms`; never rejects itself. */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((resolve) => { timer = setTimeout(() => { resolve(false); }, Math.max(0, ms)); });
  try {
    return await Promise.race([p.then(() => true, () => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}
