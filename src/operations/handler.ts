import type { Transaction } from 'kysely';
import type { StowageError } from '../core/errors.js';
import type { Database, OperationRow } from '../store/schema.js';

/**
 * What a step sees: the operation, its input (including what earlier steps remembered), cancellation,
 * and the worker's lease. A step writes rows only through `write` and calls drivers only through
 * `guard`, so that once the lease is lost (another worker took over) nothing it does lands.
 */
export interface StepContext<I extends object = Record<string, unknown>> {
  readonly operation: OperationRow;
  /** The operation's input, checked against its kind's schema (see `defineOperation`). */
  readonly input: Readonly<I>;
  /** The lease epoch this attempt runs under: unique per attempt, e.g. to name private temp files. */
  readonly epoch: number;
  /** Aborted the moment the lease is lost (commands are killed) or the engine shuts down. */
  readonly signal: AbortSignal;
  /** Reports progress 0..1 (throttled writes). */
  progress(fraction: number): void;
  /** Merges values into the operation's input so later steps, and a resumed run, see them. */
  remember(patch: Partial<I>): Promise<void>;
  /** A short note recorded with this step in the journal (e.g. which copy path was taken). */
  note(text: string): void;
  /**
   * Runs `fn` in one transaction, after checking under a row lock that this worker still holds the
   * operation; throws a LeaseLostError otherwise. Use only `trx` inside (SQLite has one writer).
   */
  write<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T>;
  /** Wraps a driver so each call first checks the lease (throws a LeaseLostError once it is lost). */
  guard<T extends object>(target: T): T;
}

/** One idempotent step. Re-running it after a crash must be safe. */
export interface OperationStep {
  readonly name: string;
  run(ctx: StepContext): Promise<void>;
}

/**
 * An operation kind as the engine runs it: ordered steps, a rollback for permanent failure, and its
 * result. Operation kinds are written with `defineOperation`, which adds the typed input and its check.
 */
export interface OperationHandler {
  readonly kind: string;
  /**
   * What is wrong with `input` for this kind, or null when it fits its schema. The engine asks at
   * enqueue (a service's bug is refused before anything is written) and when a worker reads the row
   * back (a row that does not fit fails instead of running on garbage). Absent: any input goes.
   */
  inputProblem?(input: unknown): string | null;
  readonly steps: readonly OperationStep[];
  /**
   * Undoes what the steps may have done and leaves the target in a final state (e.g. volume
   * `error`). Called once the operation has failed for good, and again after a crash during it, so
   * it must be idempotent too.
   */
  compensate(ctx: StepContext, error: StowageError): Promise<void>;
  /** The operation's result once every step succeeded. */
  result?(ctx: StepContext): Promise<Record<string, unknown>>;
}
