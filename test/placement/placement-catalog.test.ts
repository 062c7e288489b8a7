import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_TENANT_ID } from '../../src/core/ids.js';
import { decide, type PlacementRequest } from '../../src/placement/placement.js';
import { BackendRepository } from '../../src/store/backend-repository.js';
import { ClaimRepository } from '../../src/store/claim-repository.js';
import { lockPlacement } from '../../src/store/placement-lock.js';
import type { Store } from '../../src/store/store.js';
import { VolumeRepository } from '../../src/store/volume-repository.js';
import { PlacementCatalog } from '../../src/volumes/placement-catalog.js';
import { loadBackendViews } from '../../src/volumes/placement-view.js';
import { DIALECTS, backendRow, openFreshStore, volumeRow } from '../store/store-kit.js';

const GiB = 1024 ** 3;

function request(sizeBytes: number, policy: PlacementRequest['policy'] = 'spread'): PlacementRequest {
  return { sizeBytes, kind: 'block', requiredTags: [], forbiddenTags: [], requiredCapabilities: [], zone: null, policy, className: null, exclude: [] };
}

/**
 * The server's placement catalog against a real store: the version its triggers keep, and decisions
 * that stay exact where they must (the winner's capacity, read under the lock) however stale the
 * cache is, because every change below is made behind the catalog's back, as another replica would.
 */
describe.each(DIALECTS)('the placement catalog on %s', (dialect) => {
  const backends = new BackendRepository();
  const volumes = new VolumeRepository();
  const claims = new ClaimRepository();
  let store: Store;
  let close: () => Promise<void>;
  let clock: number;
  let catalog: PlacementCatalog;

  beforeEach(async () => {
    ({ store, close } = await openFreshStore(dialect));
    clock = 1_000_000;
    catalog = new PlacementCatalog(backends, () => clock);
  });
  afterEach(async () => {
    await close();
  });

  const decideLocked = (r: PlacementRequest, pinned: string | null = null) => store.transaction(async (trx) => {
    await lockPlacement(trx, store.dialect);
    return catalog.decide(trx, r, DEFAULT_TENANT_ID, pinned as never);
  });
  const exact = async (r: PlacementRequest) => decide(await loadBackendViews(store.db, backends, DEFAULT_TENANT_ID), r);

  it('moves its version for what placement reads of backends and nodes, not for a probe\'s capacity figures', async () => {
    const v0 = await backends.catalogVersion(store.db);
    const b = backendRow({ name: 'a' });
    await backends.insert(store.db, b);
    const v1 = await backends.catalogVersion(store.db);
    expect(v1).toBeGreaterThan(v0);
    await backends.update(store.db, b.id, { free_bytes: 5, total_bytes: 9, used_bytes: 4, last_probe_at: new Date().toISOString(), state_reason: 'probed' });
    expect(await backends.catalogVersion(store.db)).toBe(v1);
    await backends.update(store.db, b.id, { state: 'disabled' });
    const v2 = await backends.catalogVersion(store.db);
    expect(v2).toBeGreaterThan(v1);
    await backends.update(store.db, b.id, { tags: '["ssd"]' });
    const v3 = await backends.catalogVersion(store.db);
    expect(v3).toBeGreaterThan(v2);
    await backends.update(store.db, b.id, { tags: '["ssd"]' }); // the same value: nothing changed
    expect(await backends.catalogVersion(store.db)).toBe(v3);
    await backends.delete(store.db, b.id);
    expect(await backends.catalogVersion(store.db)).toBeGreaterThan(v3);
  });

  it('decides exactly like a full read over a few backends, whatever changed behind its back', async () => {
    const rows = ['a', 'b', 'c'].map((name) => backendRow({ name, total_bytes: 10 * GiB, free_bytes: 10 * GiB }));
    for (const r of rows) await backends.insert(store.db, r);
    const first = await decideLocked(request(GiB));
    expect(first.winner?.name).toBe('a'); // a tie, broken by name
    // Another replica fills a and b; the cached catalog is fresh by its clock and version.
    await volumes.insert(store.db, volumeRow({ backend_id: rows[0]?.id ?? null, size_bytes: 6 * GiB }));
    await volumes.insert(store.db, volumeRow({ backend_id: rows[1]?.id ?? null, size_bytes: 3 * GiB }));
    const second = await decideLocked(request(GiB));
    expect(second.winner?.name).toBe('c');
    expect(second.summary).toEqual((await exact(request(GiB))).summary);
    expect(second.verdicts).toEqual((await exact(request(GiB))).verdicts);
  });

  it('never places on capacity a stale catalog believes in, with many more backends than it re-reads', async () => {
    const rows = Array.from({ length: 30 }, (_, i) => backendRow({ name: `b${String(i).padStart(2, '0')}`, total_bytes: (10 + i) * GiB, free_bytes: (10 + i) * GiB }));
    for (const r of rows) await backends.insert(store.db, r);
    expect((await decideLocked(request(GiB))).winner?.name).toBe('b29');
    // Behind its back the ten roomiest fill up with held claims: more than one decision re-reads.
    for (const r of rows.slice(20)) {
      await claims.hold(store.db, { backendId: r.id, resourceType: 'volume', resourceId: `vol_x${r.name}`, operationId: null, bytes: Number(r.total_bytes) - GiB / 2 });
    }
    const d = await decideLocked(request(GiB));
    expect(d.winner?.name).toBe('b19');
    // And when nothing can take it, the answer and its reasons are those of a full read.
    const huge = request(1000 * GiB);
    const none = await decideLocked(huge);
    expect(none.winner).toBeNull();
    expect(none.summary.reason).toBe((await exact(huge)).summary.reason);
  });

  it('sees a backend registered or disabled, or its node failing, by another writer at once', async () => {
    const a = backendRow({ name: 'a', total_bytes: 10 * GiB, free_bytes: 10 * GiB });
    await backends.insert(store.db, a);
    expect((await decideLocked(request(GiB))).winner?.name).toBe('a');
    const big = backendRow({ name: 'big', total_bytes: 100 * GiB, free_bytes: 100 * GiB });
    await backends.insert(store.db, big);
    expect((await decideLocked(request(GiB))).winner?.name).toBe('big');
    await backends.update(store.db, big.id, { state: 'disabled' });
    expect((await decideLocked(request(GiB))).winner?.name).toBe('a');
    // A pinned decision on a backend the catalog has never seen reads it.
    const late = backendRow({ name: 'late' });
    await backends.insert(store.db, late);
    expect((await decideLocked(request(1024), late.id)).winner?.name).toBe('late');
    // Its storage node becomes unreachable: the node filter rejects it from then on.
    const at = new Date().toISOString();
    await store.db.insertInto('nodes').values({
      id: 'node_1', name: 'sn1', address: '10.99.0.221:8751', state: 'ready', state_reason: null, admin_state: 'active', version: '0.1.0',
      boot_id: null, epoch: 1, cert_pem: null, cert_fingerprint: null, cert_expires_at: null, enroll_token_hash: null, enroll_expires_at: null,
      last_heartbeat_at: at, clock_skew_ms: null, unreachable_since: null, created_at: at, updated_at: at,
    } as never).execute();
    await backends.update(store.db, a.id, { node_id: 'node_1' });
    expect((await decideLocked(request(2 * GiB))).winner?.name).toBe('a'); // late holds only 1 GiB
    await store.db.updateTable('nodes').set({ state: 'unreachable' } as never).where('id', '=', 'node_1').execute();
    const d = await decideLocked(request(2 * GiB));
    expect(d.winner).toBeNull();
    expect(d.verdicts.find((v) => v.backend === 'a')?.reason).toBe('node sn1 is unreachable');
  });

  it('sees capacity given back outside the candidates it re-reads once its figures are CATALOG_MAX_AGE old', async () => {
    const rows = Array.from({ length: 12 }, (_, i) => backendRow({ name: `b${String(i).padStart(2, '0')}`, total_bytes: 10 * GiB, free_bytes: 10 * GiB }));
    for (const r of rows) await backends.insert(store.db, r);
    const full = volumeRow({ backend_id: rows[0]?.id ?? null, size_bytes: 9 * GiB });
    await volumes.insert(store.db, full);
    expect((await decideLocked(request(GiB))).winner?.name).toBe('b01');
    // Deleted behind its back: b00 is the roomiest again (a tie broken by name), but cached as nearly full.
    await store.db.updateTable('volumes').set({ state: 'deleted' }).where('id', '=', full.id).execute();
    expect((await decideLocked(request(GiB))).winner?.name).toBe('b01');
    clock += 5000;
    expect((await decideLocked(request(GiB))).winner?.name).toBe('b00');
  });
});
