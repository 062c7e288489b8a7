import { StowageError, isErrorCode } from '../../core/errors.js';
import type { Operation } from '../../core/schemas/operation-schema.js';
import { OPERATION_STATE_TABLE } from '../../core/states.js';
import type { OperationEngine } from '../../operations/engine.js';

/**
 * Waits for a submitted operation when the client asked to (`?wait=true`). A failed operation
 * becomes its error (status from its code); one still running at the timeout is returned as is.
 */
export async function maybeWait(engine: OperationEngine, op: Operation, wait: boolean, timeoutMs: number): Promise<{ op: Operation; finished: boolean }> {
  if (!wait) return { op, finished: !OPERATION_STATE_TABLE[op.state].active };
  const done = await engine.waitFor(op.id, timeoutMs);
  if (done.state === 'failed') {
    const code = done.error && isErrorCode(done.error.code) ? done.error.code : 'INTERNAL';
    throw new StowageError(code, done.error?.message ?? 'operation failed', { ...(done.error?.details ?? {}), operationId: done.id });
  }
  return { op: done, finished: done.state === 'succeeded' };
}
