import { StowageError } from '../core/errors.js';

/**
 * Failed authentications a source may make within one window before it is refused for the rest of
 * it. Well above what a stale agent makes (a host agent whose credential was revoked keeps reporting
 * every 3 s: 20 a minute), so one left running never locks out the new agent on the same address;
 * still nothing against a 190-bit token.
 */
export const AUTH_FAILURE_LIMIT = 60;
/** The window of AUTH_FAILURE_LIMIT, from a source's first failure. */
export const AUTH_FAILURE_WINDOW_MS = 60_000;
/** Sources tracked at once; past it the oldest window is dropped (so a flood of addresses cannot grow memory). */
const MAX_SOURCES = 10_000;

/**
 * Counts failed authentications (a bearer token or an enrollment token that is not valid) per
 * source address, in fixed windows from each source's first failure. Once a source has failed
 * AUTH_FAILURE_LIMIT times in its window, every authentication from it is refused with 429
 * RATE_LIMITED (Retry-After: the rest of the window) without looking at the token, so guessing
 * gets no answer at all. A missing token is not a guess and is not counted.
 */
export class AuthFailureLimiter {
  private readonly sources = new Map<string, { failures: number; since: number }>();

  constructor(
    private readonly limit = AUTH_FAILURE_LIMIT,
    private readonly windowMs = AUTH_FAILURE_WINDOW_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Throws RATE_LIMITED while `source` is over its limit. */
  check(source: string): void {
    const s = this.current(source);
    if (!s || s.failures < this.limit) return;
    const retryAfterSeconds = Math.max(1, Math.ceil((s.since + this.windowMs - this.now()) / 1000));
    throw new StowageError('RATE_LIMITED', `too many failed authentications from ${source}; try again in ${String(retryAfterSeconds)} s with a valid token (\`stowage login\`)`, { retryAfterSeconds });
  }

  /** Records one failed authentication from `source`. */
  failed(source: string): void {
    const s = this.current(source);
    if (s) {
      s.failures++;
      return;
    }
    if (this.sources.size >= MAX_SOURCES) {
      const oldest = this.sources.keys().next().value;
      if (oldest !== undefined) this.sources.delete(oldest);
    }
    this.sources.set(source, { failures: 1, since: this.now() });
  }

  /** The source's window, or undefined when it has none open. */
  private current(source: string): { failures: number; since: number } | undefined {
    const s = this.sources.get(source);
    if (s && this.now() - s.since >= this.windowMs) {
      this.sources.delete(source);
      return undefined;
    }
    return s;
  }
}
