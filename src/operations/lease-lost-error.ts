/**
 * Thrown when a worker no longer holds an operation's lease (its renewal failed, its lease ran out,
 * or another worker claimed the operation with a newer epoch). It is never a step failure: the
 * worker stops at once and writes nothing more — no retry, no compensation, no finish — because the
 * new owner carries the operation on.
 */
export class LeaseLostError extends Error {
  constructor(readonly operationId: string, why: string) {
    super(`lost the lease on operation ${operationId}: ${why}`);
    this.name = 'LeaseLostError';
  }
}

/** True when `err` is (or was caused by) a lost lease. */
export function isLeaseLost(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof LeaseLostError) return true;
  }
  return false;
}
