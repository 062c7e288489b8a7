import type { FastifyInstance } from 'fastify';
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

/** How many `?wait=true` requests may be held open at once, per tenant and in total. */
export interface WaitHoldCaps {
  readonly perTenant: number;
  readonly total: number;
}

/**
 * The shipped caps. Each held request keeps a socket and a waiter open for up to its timeout; without
 * a cap one tenant's burst of waits could exhaust the process's sockets for everyone. 64 per tenant
 * is far above what a CLI or an orchestrator waits on at once; 1024 in total stays well inside a
 * default file-descriptor limit. Config: `waitHoldsPerTenant`, `waitHoldsTotal`.
 */
export const DEFAULT_WAIT_HOLD_CAPS: WaitHoldCaps = Object.freeze({ perTenant: 64, total: 1024 });

/**
 * Caps held `?wait=true` requests: beyond a cap the request is answered as without `wait` (202, the
 * operation submitted; the client polls it). Runs after validation (so `wait` is a boolean) and
 * after authentication (the tenant is known); the hold ends when the response is sent or the
 * connection closes.
 */
export function registerWaitHoldCaps(app: FastifyInstance, caps: WaitHoldCaps): void {
  const perTenant = new Map<string, number>();
  let total = 0;
  app.addHook('preHandler', async (req, reply) => {
    const q = req.query as { wait?: unknown } | undefined;
    if (q?.wait !== true) return;
    const tenant = req.principal.tenantId;
    const mine = perTenant.get(tenant) ?? 0;
    if (mine >= caps.perTenant || total >= caps.total) {
      q.wait = false;
      return;
    }
    perTenant.set(tenant, mine + 1);
    total += 1;
    let held = true;
    const release = (): void => {
      if (!held) return;
      held = false;
      total -= 1;
      const n = (perTenant.get(tenant) ?? 1) - 1;
      if (n <= 0) perTenant.delete(tenant);
      else perTenant.set(tenant, n);
    };
    reply.raw.once('close', release);
    reply.raw.once('finish', release);
  });
}
