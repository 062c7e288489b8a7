import type { Logger } from 'pino';
import type { Transaction } from 'kysely';
import type { Lease, OperationRepository } from '../store/operation-repository.js';
import type { Database } from '../store/schema.js';
import type { Store } from '../store/store.js';
import { LeaseLostError } from './lease-lost-error.js';

/** A confirmation by the store younger than this (and than a quarter of the lease) stands for one before a step. */
const FRESH_CONFIRMATION_MS = 250;

/**
 * One worker's hold on one operation: its epoch (fencing token), its renewal, and the AbortSignal
 * that fires the moment the hold is gone. The hold ends when a renewal fails or finds the operation
 * taken over, or when the local clock passes the last confirmed expiry (a worker that was frozen —
 * SIGSTOP, a VM pause, a long GC — must not trust a lease it could not renew). Every write goes
 * through `write`, which re-checks the epoch under a row lock in the writing transaction, so nothing
 * a stale worker does after a takeover reaches the store.
 */
export class OperationLease {
  private readonly controller = new AbortController();
  private validUntil: number;
  /** When the store last confirmed the hold (the claim that made it, a renewal, a journal write under it). */
  private confirmedAt = Date.now();
  private expiry: NodeJS.Timeout | null = null;
  private renewal: NodeJS.Timeout | null = null;
  /** One guard per object, so a port read twice through a guard is the same object. */
  private readonly guarded = new WeakMap<object, object>();

  constructor(
    private readonly store: Store,
    private readonly repo: OperationRepository,
    readonly operationId: string,
    readonly lease: Lease,
    private readonly leaseMs: number,
    claimedUntilMs: number,
    private readonly logger: Logger,
    shutdown: AbortSignal,
  ) {
    this.validUntil = claimedUntilMs - safetyMargin(leaseMs);
    // An engine shutdown past its drain deadline cancels the step too (it is not a lost lease).
    if (shutdown.aborted) this.controller.abort(shutdown.reason);
    else {
      const onShutdown = (): void => { this.controller.abort(shutdown.reason); };
      shutdown.addEventListener('abort', onShutdown, { once: true });
      // The engine's signal lives as long as the process: each lease takes its listener off when it stops.
      this.unlisten = () => { shutdown.removeEventListener('abort', onShutdown); };
    }
  }

  private unlisten: (() => void) | null = null;

  /** Aborted when the lease is lost (reason: a LeaseLostError) or the engine shuts down. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True once the lease is known lost (or has run out on the local clock). */
  get lost(): boolean {
    this.checkExpiry();
    return this.controller.signal.reason instanceof LeaseLostError;
  }

  /** Starts renewing every third of the lease and arms the local expiry. */
  start(): void {
    this.armExpiry();
    this.renewal = setInterval(() => { void this.renew(); }, Math.max(50, Math.floor(this.leaseMs / 3)));
  }

  /** Stops renewing (the operation ended or the worker gave it up). */
  stop(): void {
    if (this.renewal) clearInterval(this.renewal);
    if (this.expiry) clearTimeout(this.expiry);
    this.renewal = null;
    this.expiry = null;
    this.unlisten?.();
    this.unlisten = null;
  }

  /** Notes that a write conditioned on this lease (a step recorded in the journal) just succeeded. */
  confirmed(): void {
    this.confirmedAt = Date.now();
  }

  /**
   * Whether the store confirmed the hold so recently (a quarter of the lease, at most 250 ms) that
   * asking again before a step would learn nothing: a takeover needs the stored expiry to pass first.
   */
  get confirmedJustNow(): boolean {
    return !this.lost && Date.now() - this.confirmedAt < Math.min(FRESH_CONFIRMATION_MS, this.leaseMs / 4);
  }

  /** Throws a LeaseLostError unless the lease is still ours (no store round trip). */
  assert(): void {
    if (this.lost) throw this.controller.signal.reason as LeaseLostError;
  }

  /**
   * Extends the lease in the store; a failed or refused renewal loses it at once. Returns whether
   * the lease is still held. Called on a timer and before each step (no step starts without it).
   */
  async renew(): Promise<boolean> {
    if (this.lost) return false;
    const untilMs = Date.now() + this.leaseMs;
    try {
      if (!(await this.repo.renewLease(this.store.db, this.operationId, this.lease, new Date(untilMs).toISOString()))) {
        this.lose('another worker took the operation over');
        return false;
      }
    } catch (err) {
      // We cannot tell whether the store still counts us as the owner: behave as if not.
      this.logger.warn({ err, operationId: this.operationId }, 'lease renewal failed');
      this.lose('the lease could not be renewed');
      return false;
    }
    if (this.lost) return false;
    this.confirmedAt = Date.now();
    this.validUntil = Math.max(this.validUntil, untilMs - safetyMargin(this.leaseMs));
    this.armExpiry();
    return true;
  }

  /**
   * Runs `fn` in one transaction that first checks, under a lock on the operation row, that this
   * lease still holds it; throws a LeaseLostError (and aborts) otherwise. Use the transaction only:
   * on SQLite any other query waits for it to end.
   */
  async write<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    this.assert();
    return this.store.transaction(async (trx) => {
      if (!(await this.repo.lockIfHeld(trx, this.store.dialect, this.operationId, this.lease))) {
        this.lose('another worker took the operation over');
        this.assert();
      }
      return fn(trx);
    });
  }

  /**
   * Wraps a driver (or any object) so that each method call first checks the lease: a stale worker
   * makes no further driver call, even from code that runs before its timers noticed the loss. The
   * objects reached through its properties are wrapped the same way, so the calls on a driver's
   * ports (`guard(driver).access.revoke(…)`, `requirePort(guard(driver), 'access', …).revoke(…)`)
   * are checked too. Methods run on the real object, so private fields and built-ins keep working.
   */
  guard<T extends object>(target: T): T {
    const cached = this.guarded.get(target);
    if (cached) return cached as T;
    const proxy = new Proxy(target, {
      get: (t, prop): unknown => {
        const value: unknown = Reflect.get(t, prop, t);
        if (typeof value === 'function') {
          return (...args: unknown[]): unknown => {
            this.assert();
            return Reflect.apply(value as (...a: unknown[]) => unknown, t, args);
          };
        }
        if (typeof value !== 'object' || value === null) return value;
        // A proxy must return a frozen property's own value (a Proxy invariant): such objects are
        // data, not ports, and go out as they are.
        const own = Reflect.getOwnPropertyDescriptor(t, prop);
        return own && own.configurable === false && own.writable === false ? value : this.guard(value);
      },
    });
    this.guarded.set(target, proxy);
    return proxy;
  }

  /** Gives the lease up for good and aborts the operation's signal (kills its running commands). */
  lose(why: string): void {
    if (this.controller.signal.aborted) return;
    this.logger.warn({ operationId: this.operationId, epoch: this.lease.epoch, why }, 'lost the lease; stopping this operation here');
    this.stop();
    this.controller.abort(new LeaseLostError(this.operationId, why));
  }

  private checkExpiry(): void {
    if (!this.controller.signal.aborted && Date.now() >= this.validUntil) this.lose('the lease ran out before it could be renewed');
  }

  private armExpiry(): void {
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = setTimeout(() => { this.checkExpiry(); }, Math.max(0, this.validUntil - Date.now()) + 1);
  }
}

/** Local validity ends this much before the expiry other workers see, so we stop before they start. */
function safetyMargin(leaseMs: number): number {
  return Math.min(1000, Math.floor(leaseMs / 5));
}
