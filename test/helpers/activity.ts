import type { JsonClient } from './server.js';
import { pollUntil } from './server.js';

/** The activity counters GET /v1/backends/:ref shows (this replica's reconcile passes and probes). */
export interface BackendActivity {
  reconcile: { passes: number; lastPassAt: string | null };
  probe: { seq: number; lastProbeAt: string | null };
}

async function activityOf(api: JsonClient, backend: string): Promise<BackendActivity> {
  return api.ok<BackendActivity>('GET', `/v1/backends/${encodeURIComponent(backend)}`, 200);
}

/**
 * Waits until a whole export reconcile pass over `backend` started and finished after this call.
 * A "nothing came back" check is only evidence after the reconciler ran: without this wait it
 * passes just as well when the reconciler is idle or broken. Two completions are needed because a
 * pass may already have been running (started before the caller's action) when the counter is read.
 */
export async function afterFullReconcilePass(api: JsonClient, backend: string, timeoutMs = 120_000): Promise<void> {
  const start = (await activityOf(api, backend)).reconcile.passes;
  await pollUntil(`a full reconcile pass over ${backend} (passes > ${String(start + 1)})`, async () => {
    const now = (await activityOf(api, backend)).reconcile.passes;
    return now >= start + 2 ? true : undefined;
  }, timeoutMs);
}

/** Waits until a whole probe of `backend` started and finished after this call (see afterFullReconcilePass). */
export async function afterFullProbe(api: JsonClient, backend: string, timeoutMs = 120_000): Promise<void> {
  const start = (await activityOf(api, backend)).probe.seq;
  await pollUntil(`a full probe of ${backend} (seq > ${String(start + 1)})`, async () => {
    const now = (await activityOf(api, backend)).probe.seq;
    return now >= start + 2 ? true : undefined;
  }, timeoutMs);
}
