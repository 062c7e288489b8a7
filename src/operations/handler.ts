import type { StowageError } from '../core/errors.js';
import type { OperationRow } from '../store/schema.js';

/** What a step sees: the operation, its input (including what earlier steps remembered), cancellation. */
export interface StepContext {
  readonly operation: OperationRow;
  readonly input: Readonly<Record<string, unknown>>;
  readonly signal: AbortSignal;
  /** Reports progress 0..1 (throttled writes). */
  progress(fraction: number): void;
  /** Merges values into the operation's input so later steps, and a resumed run, see them. */
  remember(patch: Record<string, unknown>): Promise<void>;
  /** A short note recorded with this step in the journal (e.g. which copy path was taken). */
  note(text: string): void;
}

/** One idempotent step. Re-running it after a crash must be safe. */
export interface OperationStep {
  readonly name: string;
  run(ctx: StepContext): Promise<void>;
}

/** An operation kind: ordered steps, a rollback for permanent failure, and its result. */
export interface OperationHandler {
  readonly kind: string;
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
