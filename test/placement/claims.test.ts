import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClaimSweeper } from '../../src/reconcile/claim-sweeper.js';
import { BackendRepository } from '../../src/store/backend-repository.js';
import { ClaimRepository } from '../../src/store/claim-repository.js';
import { OperationRepository } from '../../src/store/operation-repository.js';
import { createRepositories } from '../../src/store/repositories.js';
import type { Store } from '../../src/store/store.js';
import { VolumeRepository } from '../../src/store/volume-repository.js';
import { claimOnBackend, loadBackendViews } from '../../src/volumes/placement-view.js';
import { DIALECTS, backendRow, isoIn, openFreshStore, operationRow, volumeRow } from '../store/store-kit.js';

const GiB = 1024 ** 3;

describe.each(DIALECTS)('capacity claims on %s', (dialect) => {
  const backends = new BackendRepository();
  const volumes = new VolumeRepository();
  const claims = new ClaimRepository();
  const operations = new OperationRepository();
  let store: Store;
  let close: () => Promise<void>;

  beforeEach(async () => {
    const fresh = await openFreshStore(dialect);
    store = fresh.store;
    close = () => fresh.close();
  });
  afterEach(async () => {
    await close();
  });

  it('counts held claims as claimed, committed ones not, and never counts a creating volume twice', async () => {
    const b = backendRow({ name: 'a', total_bytes: 100 * GiB });
    await backends.insert(store.db, b);
    const op = operationRow();
    await operations.insert(store.db, op);
    const v = volumeRow({ backend_id: b.id, state: 'creating', size_bytes: 10 * GiB });
    await volumes.insert(store.db, v);
    await claims.hold(store.db, { backendId: b.id, resourceType: 'volume', resourceId: v.id, operationId: op.id, bytes: 10 * GiB });

    let u = (await backends.usage(store.db)).get(b.id);
    expect(u).toEqual({ provisionedBytes: 0, claimedBytes: 10 * GiB, volumeCount: 1 });

    // The create's last step: the volume becomes available and its claim is committed together.
    await store.transaction(async (trx) => {
      await volumes.update(trx, v.id, { state: 'available' });
      expect(await claims.commit(trx, v.id, op.id)).toBe(1);
    });
    u = (await backends.usage(store.db)).get(b.id);
    expect(u).toEqual({ provisionedBytes: 10 * GiB, claimedBytes: 0, volumeCount: 1 });
    const view = (await loadBackendViews(store.db, backends)).find((x) => x.id === b.id);
    expect(view).toMatchObject({ provisionedBytes: 10 * GiB, claimedBytes: 0 });

    // Committing again is a no-op; release after commit does nothing either.
    expect(await claims.commit(store.db, v.id, op.id)).toBe(0);
    expect(await claims.release(store.db, v.id, op.id)).toBe(0);
    expect((await claims.listForResource(store.db, v.id)).map((c) => c.state)).toEqual(['committed']);
  });

  it('reports claims on a backend with no volumes', async () => {
    const b = backendRow({ name: 'a' });
    await backends.insert(store.db, b);
    await claims.hold(store.db, { backendId: b.id, resourceType: 'import', resourceId: 'vol-x', operationId: null, bytes: 5 });
    expect((await backends.usage(store.db)).get(b.id)).toEqual({ provisionedBytes: 0, claimedBytes: 5, volumeCount: 0 });
    expect((await backends.usage(store.db, [b.id])).get(b.id)?.claimedBytes).toBe(5);
  });

  it('claimOnBackend refuses more than the usable capacity, counting earlier held claims', async () => {
    const b = backendRow({ name: 'a', total_bytes: 100 * GiB, reserved_percent: 10 });
    await backends.insert(store.db, b);
    const claim = (bytes: number) => store.transaction((trx) => claimOnBackend(trx, store.dialect, { backends, claims }, { backendId: b.id, resourceType: 'volume', resourceId: 'vol-y', operationId: null, bytes }, 'test'));
    await claim(60 * GiB);
    await expect(claim(31 * GiB)).rejects.toMatchObject({ code: 'NO_VALID_BACKEND' });
    await claim(30 * GiB);
    expect((await backends.usage(store.db)).get(b.id)?.claimedBytes).toBe(90 * GiB);
  });

  it('sweeps stale claims: finished operation, or expired with no live operation; never a live one', async () => {
    const b = backendRow({ name: 'a' });
    await backends.insert(store.db, b);
    const failed = operationRow({ state: 'failed', finished_at: isoIn(0) });
    const running = operationRow({ state: 'running' });
    for (const o of [failed, running]) await operations.insert(store.db, o);
    const ofFailed = await claims.hold(store.db, { backendId: b.id, resourceType: 'volume', resourceId: 'r1', operationId: failed.id, bytes: 1 });
    const liveExpired = await claims.hold(store.db, { backendId: b.id, resourceType: 'volume', resourceId: 'r2', operationId: running.id, bytes: 2, ttlMs: -1000 });
    const orphanExpired = await claims.hold(store.db, { backendId: b.id, resourceType: 'volume', resourceId: 'r3', operationId: 'op-gone', bytes: 4, ttlMs: -1000 });
    const orphanFresh = await claims.hold(store.db, { backendId: b.id, resourceType: 'volume', resourceId: 'r4', operationId: null, bytes: 8 });

    const sweeper = new ClaimSweeper(store, createRepositories(), pino({ level: 'silent' }));
    expect(await sweeper.sweep()).toBe(2);
    const state = async (id: string) => (await claims.findById(store.db, id))?.state;
    expect(await state(ofFailed.id)).toBe('released');
    expect(await state(orphanExpired.id)).toBe('released');
    expect(await state(liveExpired.id)).toBe('held');
    expect(await state(orphanFresh.id)).toBe('held');
    expect((await backends.usage(store.db)).get(b.id)?.claimedBytes).toBe(10);
    expect(await sweeper.sweep()).toBe(0);

    // Finished claims are purged a day later.
    await sweeper.sweep(new Date(Date.now() + 25 * 3_600_000));
    expect(await claims.findById(store.db, ofFailed.id)).toBeUndefined();
  });
});
