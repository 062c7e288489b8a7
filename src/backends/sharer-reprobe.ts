import type { Logger } from 'pino';

/**
 * Probes the backends on one filesystem again, the ones named by `filesystems` (ids from
 * filesystemOf); it should return early once `stopped()` is true.
 */
export type SharerReprobePass = (filesystems: ReadonlySet<string>, stopped: () => boolean) => Promise<void>;

/**
 * The background reprobe of the backends sharing a filesystem after one joined or left it (their
 * share of its capacity changed). Requests are filesystems put in a pending set; one pass at a time
 * drains it, so a burst of a hundred registrations on one disk costs a handful of passes over its
 * backends rather than a hundred, and no registration waits for the others' probes.
 */
export class SharerReprobe {
  private readonly pending = new Set<string>();
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly pass: SharerReprobePass, private readonly logger: Pick<Logger, 'warn'>) {}

  /** Asks for the backends on filesystem `fs` to be probed again, in the running pass's successor. Ignored after stop(). */
  request(fs: string): void {
    if (this.stopped) return;
    this.pending.add(fs);
    this.running ??= this.drain();
  }

  /** Resolves once nothing is pending or running (what was requested before the call has been probed). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Drops what is pending, lets the running pass end at its next backend, and waits for it. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.pending.clear();
    await this.running;
  }

  private async drain(): Promise<void> {
    // One turn of the event loop first, so requests made together are drained together.
    await new Promise<void>((resolve) => { setImmediate(resolve); });
    while (!this.stopped && this.pending.size > 0) {
      const batch = new Set(this.pending);
      this.pending.clear();
      try {
        await this.pass(batch, () => this.stopped);
      } catch (err) {
        this.logger.warn({ err }, 'backend probes after a filesystem change failed');
      }
    }
    this.running = null;
  }
}
