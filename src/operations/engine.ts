import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { StowageError, type ErrorCode } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Operation } from '../core/schemas/operation-schema.js';
import { nowIso, readJson, writeJson } from '../store/json.js';
import { toOperation, type OperationRepository, type StepRecord } from '../store/operation-repository.js';
import type { OperationRow } from '../store/schema.js';
import type { Executor, Store } from '../store/store.js';
import { toDriverError } from '../drivers/sdk/driver-errors.js';
import { isConcurrentMove } from '../store/transition.js';
import type { Failpoints } from './failpoints.js';
import { inlineFailpoint, type InlineKind } from './inline-kinds.js';
import type { OperationHandler, StepContext } from './handler.js';
import type { OperationInputs } from '../operation-handlers.js';
import { isLeaseLost, LeaseLostError } from './lease-lost-error.js';
import { OperationLease } from './operation-lease.js';

/** Engine tuning; every duration in milliseconds. */
export interface EngineOptions {
  /** How long a worker's claim on an operation lasts without renewal (crash → resumable after this). */
  readonly leaseMs: number;
  /** How often idle workers look for work. */
  readonly pollMs: number;
  /** Operations run at the same time by this process. */
  readonly concurrency: number;
  /** Tries per step for transient errors (BACKEND_UNAVAILABLE, TIMEOUT, a move another writer overtook) before the operation fails. */
  readonly stepAttempts: number;
  /** Delay before the first retry; doubles each time. */
  readonly retryBaseMs: number;
  /**
   * Longest pause before an operation waiting for an unreachable storage node is tried again (its
   * backoff doubles from `retryBaseMs` with each claim up to this); default 5000.
   */
  readonly waitRetryMaxMs?: number;
}

/** The kinds an engine runs and the input each is enqueued with (the server's: every registered kind). */
export type KindInputs = Readonly<Record<string, object>>;

/** What every journal entry says besides its kind and input. */
export interface OperationHeader {
  readonly tenantId: string;
  readonly targetType: string;
  readonly targetId: string;
  readonly actor: string;
  readonly idempotencyKey?: string | null;
}

/** What a service passes to submit an operation inside its own transaction: a registered kind with its input. */
export type NewOperation<M extends KindInputs = OperationInputs> = { [K in keyof M & string]: OperationHeader & { readonly kind: K; readonly input: M[K] } }[keyof M & string];

/** An inline mutation's journal entry: like `NewOperation`, but only of a kind listed in INLINE_KINDS. */
export interface NewInlineOperation extends OperationHeader {
  readonly kind: InlineKind;
  readonly input: Record<string, unknown>;
}

const RETRYABLE: ReadonlySet<ErrorCode> = new Set(['BACKEND_UNAVAILABLE', 'TIMEOUT']);
/** A step that needs a node which does not answer waits for it (requeued, worker freed); never counted as a failure. */
const WAITS: ReadonlySet<ErrorCode> = new Set(['NODE_UNREACHABLE']);
const DEFAULT_WAIT_RETRY_MAX_MS = 5000;
const FAILURE_KEY = '__failure';
/** How often a waiter re-reads an operation a worker of this process is running (it is woken when done; this is the safety net). */
const RUNNING_HERE_POLL_MS = 1000;
/** A waiter on an operation queued or run elsewhere re-reads it after 25 ms, then twice as long each time, up to this. */
const MAX_POLL_MS = 250;

/**
 * The operation journal's executor. A mutating request inserts an operation row (with its first
 * step) in the same transaction as the resource change; workers here claim operations under a lease,
 * run their steps in order recording each as it finishes, and on permanent failure run the handler's
 * compensation. A process killed at any point leaves a running operation whose lease expires, and any
 * worker (this process after restart, or another replica) resumes it from the unfinished step.
 */
export class OperationEngine<M extends KindInputs = OperationInputs> {
  private readonly handlers = new Map<string, OperationHandler>();
  private readonly owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly running = new Map<string, Promise<void>>();
  /** waitFor callers of this process, woken when a worker here is done with their operation (others still poll). */
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private scanning = false;
  private rescan = false;
  private stopped = true;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly failpoints: Failpoints,
    private readonly options: EngineOptions,
    /** The journal's repository, from the composition root's bundle. */
    private readonly repo: OperationRepository,
  ) {}

  register(handler: OperationHandler): void {
    this.handlers.set(handler.kind, handler);
  }

  /** Inserts a queued operation; call inside the transaction that changes the target. */
  async enqueue(db: Executor, op: NewOperation<M>): Promise<OperationRow> {
    const handler = this.handlers.get(op.kind);
    if (!handler) throw new StowageError('INTERNAL', `no handler for operation kind ${op.kind}`);
    // A service that writes an input its kind cannot run on is a bug: refused before anything is written.
    const problem = handler.inputProblem?.(op.input) ?? null;
    if (problem !== null) throw new StowageError('INTERNAL', `operation ${op.kind} submitted with an input that does not fit its schema: ${problem}`, { kind: op.kind });
    const at = nowIso();
    const row: OperationRow = {
      id: newId('operation'),
      tenant_id: op.tenantId,
      kind: op.kind,
      target_type: op.targetType,
      target_id: op.targetId,
      state: 'queued',
      step: handler.steps[0]?.name ?? null,
      steps_done: '[]',
      attempts: 0,
      input: writeJson(op.input),
      result: null,
      error: null,
      actor: op.actor,
      idempotency_key: op.idempotencyKey ?? null,
      progress: null,
      not_before: null,
      waiting_reason: null,
      lease_owner: null,
      lease_expires_at: null,
      lease_epoch: 0,
      created_at: at,
      updated_at: at,
      finished_at: null,
    };
    await this.repo.insert(db, row);
    return row;
  }

  /**
   * Records a mutating request that completed inline (metadata changes such as a backend update) as
   * an already-succeeded operation, so every mutation has its journal entry. Call it last in the
   * transaction: its `<kind>/record:before` failpoint stands for a crash before that commit. After
   * the commit the caller calls `recorded` (the `:after` point), before it answers.
   */
  async record(db: Executor, op: NewInlineOperation, result: Record<string, unknown>): Promise<OperationRow> {
    const at = nowIso();
    const row: OperationRow = {
      id: newId('operation'), tenant_id: op.tenantId, kind: op.kind, target_type: op.targetType, target_id: op.targetId,
      state: 'succeeded', step: null, steps_done: writeJson([{ name: 'apply', at }]), attempts: 1, input: writeJson(op.input),
      result: writeJson(result), error: null, actor: op.actor, idempotency_key: op.idempotencyKey ?? null, progress: 1,
      lease_owner: null, lease_expires_at: null, lease_epoch: 0, not_before: null, waiting_reason: null, created_at: at, updated_at: at, finished_at: at,
    };
    await this.repo.insert(db, row);
    await this.failpoints.hit(inlineFailpoint(op.kind, 'before'));
    return row;
  }

  /** Marks that an inline record's transaction committed (its `<kind>/record:after` failpoint: a crash before the answer). */
  async recorded(kind: InlineKind): Promise<void> {
    await this.failpoints.hit(inlineFailpoint(kind, 'after'));
  }

  /** Starts the workers (and resumes whatever a crashed process left running once its lease expires). */
  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Asks the workers to look for work now (after a submit). */
  wake(): void {
    if (!this.stopped) this.schedule(0);
  }

  /**
   * Stops taking work and waits for running operations up to `drainMs`, then aborts their signal and
   * waits `abortGraceMs` more (a step that ignores its signal is left behind); unfinished ones resume later.
   */
  async stop(drainMs = 5000, abortGraceMs = 1000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const all = Promise.allSettled([...this.running.values()]);
    const timedOut = await Promise.race([all.then(() => false), sleep(drainMs).then(() => true)]);
    if (timedOut) {
      this.abort.abort();
      await Promise.race([all, sleep(abortGraceMs)]);
    }
  }

  /** Polls until the operation is finished or `timeoutMs` passes; returns its latest state. */
  async waitFor(id: string, timeoutMs: number, signal?: AbortSignal): Promise<Operation> {
    const deadline = Date.now() + timeoutMs;
    for (let backoffMs = 25; ; backoffMs = Math.min(MAX_POLL_MS, backoffMs * 2)) {
      const row = await this.repo.findById(this.store.db, id);
      if (!row) throw new StowageError('OPERATION_NOT_FOUND', `operation ${id} does not exist`, { id });
      if (row.state === 'succeeded' || row.state === 'failed' || Date.now() >= deadline || signal?.aborted) return toOperation(row);
      // A worker of this process wakes its waiters the moment it is done, so the poll is for work
      // queued here or run by another replica, and backs off: fifty requests waiting behind four
      // workers polled their rows 1,800 times a second at a flat 25 ms.
      const pollMs = this.running.has(id) ? RUNNING_HERE_POLL_MS : backoffMs;
      await this.finishedHereOrSleep(id, Math.min(pollMs, Math.max(1, deadline - Date.now())));
    }
  }

  /** Resolves after `ms`, or sooner when a worker of this process is done with operation `id`. */
  private finishedHereOrSleep(id: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const set = this.waiters.get(id) ?? new Set<() => void>();
      const done = (): void => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0 && this.waiters.get(id) === set) this.waiters.delete(id);
        resolve();
      };
      const timer = setTimeout(done, ms);
      set.add(done);
      this.waiters.set(id, set);
    });
  }

  private notifyWaiters(id: string): void {
    for (const w of [...(this.waiters.get(id) ?? [])]) w();
  }

  private schedule(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => { void this.scan(); }, delayMs);
  }

  private async scan(): Promise<void> {
    if (this.scanning) { this.rescan = true; return; }
    this.scanning = true;
    try {
      do {
        this.rescan = false;
        const free = this.options.concurrency - this.running.size;
        if (free <= 0 || this.stopped) break;
        const ids = await this.repo.listRunnable(this.store.db, nowIso(), free + this.running.size);
        for (const id of ids) {
          if (this.running.size >= this.options.concurrency || this.stopped) break;
          if (this.running.has(id)) continue;
          const untilMs = Date.now() + this.options.leaseMs;
          const claimed = await this.repo.claimRow(this.store.db, id, this.owner, nowIso(), new Date(untilMs).toISOString());
          if (!claimed) continue;
          const held = new OperationLease(this.store, this.repo, id, claimed.lease, this.options.leaseMs, untilMs, this.logger, this.abort.signal);
          const p = this.execute(held, claimed.row).catch((err: unknown) => { this.logger.error({ err, operationId: id }, 'operation worker crashed'); })
            .finally(() => { this.running.delete(id); this.notifyWaiters(id); this.wake(); });
          this.running.set(id, p);
        }
      } while (this.rescan && !this.stopped);
    } catch (err) {
      this.logger.error({ err }, 'operation scan failed');
    } finally {
      this.scanning = false;
      if (!this.stopped) this.schedule(this.options.pollMs);
    }
  }

  private async execute(lease: OperationLease, row: OperationRow): Promise<void> {
    lease.start();
    try {
      const handler = this.handlers.get(row.kind);
      if (!handler) {
        await this.repo.finish(this.store.db, row.id, lease.lease, 'failed', null, { code: 'INTERNAL', message: `no handler for ${row.kind}`, details: {} });
        return;
      }
      // A row whose input does not fit its kind's schema (written by an older version, or edited by
      // hand) fails at once with what is wrong: no step and no compensation runs on it.
      const problem = handler.inputProblem?.(readJson<unknown>(row.input, null)) ?? null;
      if (problem !== null) {
        const error = { code: 'INTERNAL' as const, message: `operation ${row.id} (${row.kind}) has an input that does not fit its schema: ${problem}; nothing was run`, details: { kind: row.kind } };
        this.logger.error({ operationId: row.id, kind: row.kind, problem }, 'operation input does not fit its schema');
        if (!(await this.repo.finish(this.store.db, row.id, lease.lease, 'failed', null, error))) throw new LeaseLostError(row.id, 'another worker took the operation over');
        return;
      }
      await this.runSteps(row, handler, lease);
    } catch (err) {
      // A lost lease ends this worker's part quietly: the new owner carries the operation on.
      if (!isLeaseLost(err) && !lease.lost) throw err;
      this.logger.warn({ operationId: lease.operationId, epoch: lease.lease.epoch }, 'gave the operation up after losing its lease');
    } finally {
      lease.stop();
    }
  }

  private async runSteps(row: OperationRow, handler: OperationHandler, lease: OperationLease): Promise<void> {
    const input: Record<string, unknown> = readJson<Record<string, unknown>>(row.input, {});
    const done: StepRecord[] = readJson<StepRecord[]>(row.steps_done, []);
    let note: string | undefined;
    let lastProgressWrite = 0;
    const lost = (): LeaseLostError => new LeaseLostError(row.id, 'another worker took the operation over');
    const ctx: StepContext = {
      operation: row,
      input,
      epoch: lease.lease.epoch,
      signal: lease.signal,
      progress: (fraction) => {
        const now = Date.now();
        if ((now - lastProgressWrite < 250 && fraction < 1) || lease.lost) return;
        lastProgressWrite = now;
        void this.repo.setProgress(this.store.db, row.id, lease.lease, Math.max(0, Math.min(1, fraction)))
          .then((ok) => { if (!ok) lease.lose('another worker took the operation over'); }, () => undefined);
      },
      remember: async (patch) => {
        lease.assert();
        Object.assign(input, patch);
        if (!(await this.repo.setInput(this.store.db, row.id, lease.lease, input))) {
          lease.lose('another worker took the operation over');
          throw lost();
        }
      },
      note: (text) => { note = text; },
      write: (fn) => lease.write(fn),
      guard: (target) => lease.guard(target),
    };
    const log = this.logger.child({ operationId: row.id, kind: row.kind, target: row.target_id, epoch: lease.lease.epoch });

    const failure = input[FAILURE_KEY] as { code: ErrorCode; message: string; details: Record<string, unknown> } | undefined;
    if (failure) {
      log.warn({ error: failure.code }, 'resuming compensation after a restart');
      await this.fail(ctx, handler, lease, new StowageError(failure.code, failure.message, failure.details));
      return;
    }
    const doneNames = new Set(done.map((d) => d.name));
    if (done.length > 0) log.info({ resumedAt: row.step }, 'resuming operation');
    for (const [i, step] of handler.steps.entries()) {
      if (doneNames.has(step.name)) continue;
      const failpoint = `${row.kind}/${step.name}`;
      await this.failpoints.hit(`${failpoint}:before`);
      // No step starts without a lease confirmed by the store just now: by the claim or the last
      // step's journal write when those were a moment ago (two fewer writes per operation), else by a renewal.
      if (!lease.confirmedJustNow && !(await lease.renew())) throw lost();
      note = undefined;
      try {
        await this.runWithRetry(() => step.run(ctx), log, step.name, lease);
      } catch (err) {
        // Whatever a step throws once the lease is gone is not its failure: no compensation, no finish.
        if (isLeaseLost(err) || lease.lost) throw err;
        const e = toOperationError(err);
        if (WAITS.has(e.code)) {
          await this.releaseToWait(row, lease, e, log, step.name);
          return;
        }
        log.warn({ step: step.name, code: e.code, msg: e.message }, 'operation step failed');
        await ctx.remember({ [FAILURE_KEY]: e.toJSON() });
        await this.failpoints.hit(`${row.kind}/compensate:before`);
        await this.fail(ctx, handler, lease, e);
        return;
      }
      // The riskiest window: the step's effect happened but the journal does not say so yet.
      await this.failpoints.hit(`${failpoint}:done`);
      done.push({ name: step.name, at: nowIso(), ...(note !== undefined ? { note } : {}) });
      const next = handler.steps[i + 1]?.name ?? null;
      lease.assert();
      if (!(await this.repo.recordStep(this.store.db, row.id, lease.lease, done, next))) {
        lease.lose('another worker took the operation over');
        throw lost();
      }
      lease.confirmed();
      await this.failpoints.hit(`${failpoint}:after`);
    }
    const result = handler.result ? await handler.result(ctx) : {};
    lease.assert();
    if (!(await this.repo.finish(this.store.db, row.id, lease.lease, 'succeeded', result, null))) throw lost();
    log.info('operation succeeded');
  }

  private async fail(ctx: StepContext, handler: OperationHandler, lease: OperationLease, error: StowageError): Promise<void> {
    if (!(await lease.renew())) throw new LeaseLostError(ctx.operation.id, 'another worker took the operation over');
    try {
      await this.runWithRetry(() => handler.compensate(ctx, error), this.logger, 'compensate', lease);
    } catch (err) {
      if (isLeaseLost(err) || lease.lost) throw err;
      const e = toOperationError(err);
      // The failure is remembered in the input: once the node answers, the compensation resumes.
      if (!WAITS.has(e.code)) throw err;
      await this.releaseToWait(ctx.operation, lease, e, this.logger.child({ operationId: ctx.operation.id }), 'compensate');
      return;
    }
    lease.assert();
    if (!(await this.repo.finish(this.store.db, ctx.operation.id, lease.lease, 'failed', null, error.toJSON()))) {
      throw new LeaseLostError(ctx.operation.id, 'another worker took the operation over');
    }
  }

  /**
   * Requeues an operation that waits for a node: not before now + backoff (doubling with each claim
   * from retryBaseMs, capped at waitRetryMaxMs), with the error's message as its visible reason,
   * and its lease dropped so this worker takes other work.
   */
  private async releaseToWait(row: OperationRow, lease: OperationLease, e: StowageError, log: Logger, what: string): Promise<void> {
    const cap = this.options.waitRetryMaxMs ?? DEFAULT_WAIT_RETRY_MAX_MS;
    const delayMs = Math.min(cap, this.options.retryBaseMs * 2 ** Math.min(20, Math.max(0, row.attempts - 1)));
    const notBefore = new Date(Date.now() + delayMs).toISOString();
    lease.assert();
    if (!(await this.repo.releaseWaiting(this.store.db, row.id, lease.lease, notBefore, e.message))) {
      lease.lose('another worker took the operation over');
      throw new LeaseLostError(row.id, 'another worker took the operation over');
    }
    log.info({ step: what, delayMs, reason: e.message }, 'operation waits for a node; requeued');
    // Looked at again once the wait is over, even if nothing else wakes the workers before.
    if (!this.stopped) setTimeout(() => { this.wake(); }, delayMs + 1).unref();
  }

  private async runWithRetry(fn: () => Promise<void>, log: Logger, what: string, lease: OperationLease): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      lease.assert();
      try {
        await fn();
        return;
      } catch (err) {
        if (isLeaseLost(err) || lease.lost) throw err;
        const e = toOperationError(err);
        if (!(RETRYABLE.has(e.code) || isConcurrentMove(e)) || attempt >= this.options.stepAttempts || lease.signal.aborted) throw e;
        const delay = this.options.retryBaseMs * 2 ** (attempt - 1);
        log.info({ step: what, attempt, delayMs: delay, code: e.code }, 'transient failure; retrying');
        await sleep(delay);
      }
    }
  }
}

/** Driver command failures become DRIVER_FAILED with the diagnosis; everything else keeps its code. */
export function toOperationError(err: unknown): StowageError {
  return toDriverError(err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
