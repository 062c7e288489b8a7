import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { QuotaReport } from '../../src/core/schemas/quota-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { startTwoReplicas } from '../helpers/replicas.js';
import { type ApiResponse, type JsonClient, ensureBuilt, killAllSpawned, pollUntil, removeTempDir } from '../helpers/server.js';
import { InjectClient, startInjectServer, type InjectServer } from '../helpers/inject.js';
import { makeTenantUser } from '../helpers/tenants.js';

const MiB = 1024 ** 2;
interface ErrorBody { code: string; details: Record<string, unknown> }

/** Fires `n` creates at once (split across clients) and returns the answers. */
async function race(clients: readonly JsonClient[], n: number, prefix: string, body: Record<string, unknown>): Promise<ApiResponse[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => (clients[i % clients.length] as JsonClient).request('POST', '/v1/volumes', { body: { name: `${prefix}-${String(i)}`, sizeBytes: MiB, ...body } })));
}

/** Exactly `k` accepted, every other one 422 QUOTA_EXCEEDED on `quota`. */
function expectExactly(results: readonly ApiResponse[], k: number, quota: string): void {
  const accepted = results.filter((r) => r.status === 202);
  expect(accepted.length).toBe(k);
  for (const r of results.filter((x) => x.status !== 202)) {
    expect(r.status, r.text).toBe(422);
    expect((r.body as ErrorBody).code).toBe('QUOTA_EXCEEDED');
    expect((r.body as ErrorBody).details.quota).toBe(quota);
  }
}

async function usage(api: JsonClient, quota: string, scope = 'tenant'): Promise<number | undefined> {
  return (await api.ok<QuotaReport>('GET', '/v1/quotas', 200)).lines.find((l) => l.quota === quota && l.scope === scope)?.used;
}

async function allAvailable(api: JsonClient, n: number): Promise<Volume[]> {
  return pollUntil(`${String(n)} volumes available`, async () => {
    const page = await api.ok<{ items: Volume[] }>('GET', '/v1/volumes?limit=1000', 200);
    return page.items.length === n && page.items.every((v) => v.state === 'available') ? page.items : undefined;
  }, 120_000, 200);
}

describe('parallel creates at a quota edge (SQLite, one in-process server)', () => {
  let s: InjectServer;
  beforeAll(async () => {
    s = await startInjectServer();
  });
  afterAll(async () => {
    await s.close();
  });

  it('a volume-count quota of K admits exactly K of 3K racing creates; another tenant is not limited by it', async () => {
    const k = 4;
    await s.api.ok('PUT', '/v1/tenants/default/quota', 200, { body: { maxVolumes: k } });
    const other = new InjectClient(s.server.app, (await makeTenantUser(s.api, { tenant: 'qr-other', user: 'qr-other', role: 'member' })).token);
    const results = await race([s.api], 3 * k, 'cnt', {});
    expectExactly(results, k, 'volumes');
    expect(await usage(s.api, 'volumes')).toBe(k);
    expectExactly(await race([other], k + 2, 'oth', {}), k + 2, 'none');
    await allAvailable(s.api, k);
    await allAvailable(other, k + 2);
    expect(await usage(s.api, 'volumes')).toBe(k);
  });

  it('a bytes quota, a per-class quota and a snapshot quota each hold under a race', async () => {
    const tenant = await makeTenantUser(s.api, { tenant: 'qr-bytes', user: 'qr-bytes', role: 'member' });
    const api = new InjectClient(s.server.app, tenant.token);
    await s.api.ok('PUT', '/v1/tenants/qr-bytes/quota', 200, { body: { maxBytes: 3 * MiB } });
    expectExactly(await race([api], 9, 'byt', {}), 3, 'bytes');
    expect(await usage(api, 'bytes')).toBe(3 * MiB);

    await s.api.ok('POST', '/v1/classes', 201, { body: { name: 'qr-gold' } });
    const t2 = new InjectClient(s.server.app, (await makeTenantUser(s.api, { tenant: 'qr-class', user: 'qr-class', role: 'member' })).token);
    await s.api.ok('PUT', '/v1/tenants/qr-class/quota', 200, { body: { class: 'qr-gold', maxVolumes: 2 } });
    expectExactly(await race([t2], 6, 'gold', { class: 'qr-gold' }), 2, 'volumes');
    expect(await usage(t2, 'volumes', 'class qr-gold')).toBe(2);
    // Outside the class the tenant is not limited.
    expectExactly(await race([t2], 3, 'plain', {}), 3, 'none');

    await allAvailable(t2, 5);
    await s.api.ok('PUT', '/v1/tenants/qr-class/quota', 200, { body: { maxSnapshots: 2 } });
    const snaps = await Promise.all(Array.from({ length: 6 }, (_, i) => t2.request('POST', '/v1/snapshots', { body: { volume: 'plain-0', name: `snap-${String(i)}` } })));
    expectExactly(snaps, 2, 'snapshots');
    expect(await usage(t2, 'snapshots')).toBe(2);
  });
});

describe('parallel creates at a quota edge (PostgreSQL, two `stowage serve` processes)', () => {
  const dirs: string[] = [];
  beforeAll(async () => {
    await ensureBuilt();
  });
  afterEach(async () => {
    await killAllSpawned();
    for (const d of dirs.splice(0)) removeTempDir(d);
  });

  it('admits exactly K of 3K creates split across both replicas', async () => {
    const { a, b, apiA, apiB, dirs: made } = await startTwoReplicas('quota');
    dirs.push(...made);
    const k = 4;
    await apiA.ok('PUT', '/v1/tenants/default/quota', 200, { body: { maxVolumes: k } });
    expectExactly(await race([apiA, apiB], 3 * k, 'pg', {}), k, 'volumes');
    expect(await usage(apiB, 'volumes')).toBe(k);
    await apiA.ok('PUT', '/v1/tenants/default/quota', 200, { body: { maxVolumes: null, maxBytes: (k + 2) * MiB } });
    expectExactly(await race([apiA, apiB], 3 * k, 'pgb', {}), 2, 'bytes');
    expect(await usage(apiA, 'bytes')).toBe((k + 2) * MiB);
    expect(a.hasExited() || b.hasExited()).toBe(false);
  });
});
