import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/core/schemas/backend-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { startTwoReplicas } from '../helpers/replicas.js';
import { type JsonClient, ensureBuilt, killAllSpawned, makeTempDir, pollUntil, removeTempDir } from '../helpers/server.js';
import { startInjectServer, type InjectServer } from '../helpers/inject.js';

interface ErrorBody { code: string; message: string; details: Record<string, unknown> }
interface StorageClass { name: string; policy: string; isDefault: boolean }
interface DryRun { winner: string | null; reason: string; verdicts: { backend: string; passed: boolean; filter: string | null; reason: string | null }[] }

/**
 * Registers two dir backends whose usable capacity holds exactly 3 and 2 volumes of the returned
 * size (the dir backend's total comes from the real filesystem, so the size is computed from what
 * the probe reported), plus a class that selects them by tag.
 */
async function setUpFleet(api: JsonClient, root: string, suffix: string): Promise<{ sizeBytes: number; k: number; className: string; backends: string[] }> {
  const tag = `par-${suffix}`;
  const names = [`pa-${suffix}`, `pb-${suffix}`];
  const reserves = [99, 99.2];
  for (const [i, name] of names.entries()) {
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    const created = await api.ok<{ backend: Backend }>('POST', '/v1/backends', 201, { body: { name, driver: `dir://${dir}`, tags: [tag], reservedPercent: reserves[i] } });
    expect(created.backend.state).toBe('enabled');
  }
  // Both show their share of the one filesystem once the background reprobe after pb's registration
  // counted it for pa too (pb's own probe in its request already did): the same total on both.
  const [a, b] = await pollUntil('pa and pb to show the same share of their filesystem', async () => {
    const pair = [await api.ok<Backend>('GET', `/v1/backends/${names[0] ?? ''}`, 200), await api.ok<Backend>('GET', `/v1/backends/${names[1] ?? ''}`, 200)] as const;
    return pair[0].capacity.totalBytes === pair[1].capacity.totalBytes ? pair : undefined;
  }, 30_000, 20);
  expect(a.capacity.totalBytes).toBeGreaterThan(0);
  const sizeBytes = Math.floor(a.capacity.usableBytes / 3);
  const k = Math.floor(a.capacity.usableBytes / sizeBytes) + Math.floor(b.capacity.usableBytes / sizeBytes);
  expect([Math.floor(a.capacity.usableBytes / sizeBytes), Math.floor(b.capacity.usableBytes / sizeBytes)]).toEqual([3, 2]);
  const className = `cls-${suffix}`;
  const cls = await api.ok<StorageClass>('POST', '/v1/classes', 201, { body: { name: className, requiredTags: [tag], policy: 'spread' } });
  expect(cls).toMatchObject({ name: className, policy: 'spread', isDefault: false });
  return { sizeBytes, k, className, backends: names };
}

/** N parallel creates split across `clients`; checks exactly K succeed and no backend is overfilled. */
async function raceCreates(clients: readonly JsonClient[], fleet: { sizeBytes: number; k: number; className: string; backends: string[] }): Promise<void> {
  const n = fleet.k * 3;
  const results = await Promise.all(Array.from({ length: n }, (_, i) => {
    const api = clients[i % clients.length] as JsonClient;
    return api.request('POST', '/v1/volumes', { body: { name: `race-${String(i)}`, sizeBytes: fleet.sizeBytes, class: fleet.className } });
  }));
  const accepted = results.filter((r) => r.status === 202);
  const rejected = results.filter((r) => r.status !== 202);
  expect(accepted.length).toBe(fleet.k);
  expect(rejected.length).toBe(n - fleet.k);
  for (const r of rejected) {
    expect(r.status, r.text).toBe(422);
    expect((r.body as ErrorBody).code).toBe('NO_VALID_BACKEND');
  }

  const api = clients[0] as JsonClient;
  // Every accepted create finishes (the driver really creates the files), and none is left creating.
  const volumes = await pollUntil('all accepted volumes to be available', async () => {
    const page = await api.ok<{ items: Volume[] }>('GET', '/v1/volumes?limit=1000', 200);
    return page.items.length === fleet.k && page.items.every((v) => v.state === 'available') ? page.items : undefined;
  }, 120_000, 200);
  for (const v of volumes) {
    expect(v.placement).toMatchObject({ className: fleet.className, policy: 'spread', winner: v.backendName });
    expect(v.placement?.attempts).toEqual([{ backend: v.backendName, ok: true, error: null }]);
  }

  const perBackend = new Map<string, number>();
  for (const v of volumes) perBackend.set(v.backendName ?? '', (perBackend.get(v.backendName ?? '') ?? 0) + 1);
  expect([perBackend.get(fleet.backends[0] ?? ''), perBackend.get(fleet.backends[1] ?? '')]).toEqual([3, 2]);
  for (const name of fleet.backends) {
    const b = await api.ok<Backend>('GET', `/v1/backends/${name}`, 200);
    expect(b.capacity.claimedBytes).toBe(0);
    expect(b.capacity.provisionedBytes).toBe((perBackend.get(name) ?? 0) * fleet.sizeBytes);
    // Never past usable capacity: what is left is still >= 0 (and less than one more volume).
    expect(b.capacity.usableBytes).toBeGreaterThanOrEqual(0);
    expect(b.capacity.usableBytes).toBeLessThan(fleet.sizeBytes);
  }

  // The dry run explains why one more cannot fit: both rejected by the capacity filter.
  const dry = await api.ok<DryRun>('POST', '/v1/placements/dry-run', 200, { body: { name: 'one-more', sizeBytes: fleet.sizeBytes, class: fleet.className } });
  expect(dry.winner).toBeNull();
  expect(dry.verdicts.map((v) => v.filter)).toEqual(['capacity', 'capacity']);
}

describe('parallel creates through the API (SQLite, one in-process server)', () => {
  let srv: InjectServer;
  beforeAll(async () => {
    srv = await startInjectServer({ defaultBackend: false });
  });
  afterAll(async () => {
    await srv.close();
  });

  it('places exactly K of N racing creates; the rest fail 422 NO_VALID_BACKEND; no backend is overfilled', async () => {
    const fleet = await setUpFleet(srv.api, join(srv.scratchDir, 'fleet'), randomBytes(3).toString('hex'));
    expect(fleet.k).toBe(5);
    await raceCreates([srv.api], fleet);
  });
});

describe('parallel creates through the API (PostgreSQL, two `stowage serve` processes)', () => {
  const dirs: string[] = [];
  beforeAll(async () => {
    await ensureBuilt();
  });
  afterEach(async () => {
    await killAllSpawned();
    for (const d of dirs.splice(0)) removeTempDir(d);
  });

  it('places exactly K of N creates split across both replicas sharing the database', async () => {
    const { a, b, apiA, apiB, dirs: made } = await startTwoReplicas('placement', { STOWAGE_DEFAULT_BACKEND: 'false' });
    const fleetDir = makeTempDir('stowage-pl-fleet-');
    dirs.push(...made, fleetDir);
    expect((await apiB.request('GET', '/v1/backends')).status).toBe(200);

    const fleet = await setUpFleet(apiA, fleetDir, randomBytes(3).toString('hex'));
    expect(fleet.k).toBe(5);
    await raceCreates([apiA, apiB], fleet);
    expect(a.hasExited() || b.hasExited()).toBe(false);
  });
});
