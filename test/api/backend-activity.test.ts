import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { afterFullProbe, type BackendActivity } from '../helpers/activity.js';
import { pollUntil } from '../helpers/server.js';
import { startInjectServer, type InjectServer } from '../helpers/inject.js';
import type { OpenApiDoc } from './api-kit.js';

/**
 * GET /v1/backends/:ref shows this replica's reconcile and probe counters: the evidence "nothing
 * changed" checks wait for. (The reconcile counter moves only for drivers that reconcile exports,
 * tgt; the iSCSI tier waits on it.)
 */
describe('backend activity counters', () => {
  let s: InjectServer;

  beforeAll(async () => {
    // Probes every 200 ms instead of 30 s so periodic probes are seen within the test; the counter, not the timing, is under test.
    s = await startInjectServer({ probeIntervalMs: 200 });
  });
  afterAll(async () => { await s.close(); });

  it('are documented in the route\'s schema, so /openapi.json lists them', async () => {
    const doc = await s.api.ok<OpenApiDoc>('GET', '/openapi.json', 200, { token: null });
    const text = JSON.stringify(doc.paths['/v1/backends/{ref}']?.get ?? {});
    for (const field of ['reconcile', 'passes', 'lastPassAt', 'probe', 'seq', 'lastProbeAt']) expect(text).toContain(`"${field}"`);
  });

  it('count a refresh as one probe, and the periodic probes too', async () => {
    const before = await s.api.ok<BackendActivity>('GET', '/v1/backends/local', 200);
    const refreshed = await s.api.ok<{ lastProbeAt: string | null }>('POST', '/v1/backends/local/refresh', 200);
    const after = await s.api.ok<BackendActivity>('GET', '/v1/backends/local', 200);
    expect(after.probe.seq).toBeGreaterThan(before.probe.seq);
    expect(after.probe.lastProbeAt).not.toBeNull();
    expect(refreshed.lastProbeAt).not.toBeNull();
    // Nobody calls refresh now: only the periodic probe can move the counter.
    await afterFullProbe(s.api, 'local');
    await pollUntil('another periodic probe', async () => {
      const now = await s.api.ok<BackendActivity>('GET', '/v1/backends/local', 200);
      return now.probe.seq > after.probe.seq + 2 ? true : undefined;
    });
  });

  it('show no reconcile passes for a driver that does not reconcile exports', async () => {
    const a = await s.api.ok<BackendActivity>('GET', '/v1/backends/local', 200);
    expect(a.reconcile).toEqual({ passes: 0, lastPassAt: null });
  });
});
