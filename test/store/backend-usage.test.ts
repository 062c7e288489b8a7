import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { idOf } from '../../src/core/ids.js';
import { BackendRepository, toBackend } from '../../src/store/backend-repository.js';
import { ClaimRepository } from '../../src/store/claim-repository.js';
import type { Store } from '../../src/store/store.js';
import { VolumeRepository } from '../../src/store/volume-repository.js';
import { DIALECTS, backendRow, openFreshStore, volumeRow } from './store-kit.js';

const GiB = 1024 ** 3;

describe.each(DIALECTS)('backend usage on %s', (dialect) => {
  const backends = new BackendRepository();
  const volumes = new VolumeRepository();
  const claims = new ClaimRepository();
  let store: Store;
  let close: () => Promise<void>;

  beforeEach(async () => {
    ({ store, close } = await openFreshStore(dialect));
  });
  afterEach(async () => {
    await close();
  });

  it('sums provisioned bytes, held claims and live volumes per backend', async () => {
    const a = backendRow({ name: 'a', total_bytes: 100 * GiB });
    const b = backendRow({ name: 'b', total_bytes: 100 * GiB });
    const empty = backendRow({ name: 'empty' });
    for (const r of [a, b, empty]) await backends.insert(store.db, r);
    const onA = [
      { state: 'creating', size_bytes: 1 * GiB },
      { state: 'available', size_bytes: 2 * GiB },
      { state: 'resizing', size_bytes: 4 * GiB },
      { state: 'deleting', size_bytes: 8 * GiB },
      { state: 'deleted', size_bytes: 16 * GiB },
      { state: 'error', size_bytes: 32 * GiB },
    ] as const;
    const ids = new Map<string, string>();
    for (const v of onA) {
      const row = volumeRow({ backend_id: a.id, ...v });
      ids.set(v.state, row.id);
      await volumes.insert(store.db, row);
    }
    await volumes.insert(store.db, volumeRow({ backend_id: b.id, state: 'available', size_bytes: 3 * GiB }));
    await volumes.insert(store.db, volumeRow({ backend_id: b.id, state: 'available', size_bytes: 5 * 1024 ** 4 }));
    await volumes.insert(store.db, volumeRow({ backend_id: null, state: 'error', size_bytes: 64 * GiB }));
    // The creating volume's full size and the resizing one's growth are held claims until their operations commit them.
    const hold = (resourceId: string, bytes: number) => claims.hold(store.db, { backendId: a.id, resourceType: 'volume', resourceId, operationId: null, bytes });
    await hold(ids.get('creating') ?? '', 1 * GiB);
    await hold(ids.get('resizing') ?? '', 3 * GiB);
    const committed = volumeRow({ backend_id: a.id, state: 'available', size_bytes: 0, name: 'committed-claim' });
    await hold(committed.id, 5 * GiB);
    await claims.commit(store.db, committed.id);
    const released = volumeRow({ name: 'released-claim' });
    await hold(released.id, 6 * GiB);
    await claims.release(store.db, released.id);

    const usage = await backends.usage(store.db);
    expect(usage.get(a.id)).toEqual({ provisionedBytes: 14 * GiB, claimedBytes: 4 * GiB, volumeCount: 4 });
    expect(usage.get(b.id)).toEqual({ provisionedBytes: 3 * GiB + 5 * 1024 ** 4, claimedBytes: 0, volumeCount: 2 });
    expect(usage.has(empty.id)).toBe(false);

    const onlyB = await backends.usage(store.db, [b.id]);
    expect([...onlyB.keys()]).toEqual([b.id]);
    expect((await backends.usage(store.db, [])).size).toBe(0);

    // BACKEND_IN_USE counts every volume not deleted, error ones included.
    expect(await backends.countVolumes(store.db, a.id)).toBe(5);
    expect(await backends.countVolumes(store.db, empty.id)).toBe(0);

    const model = toBackend(a, usage.get(a.id));
    expect(model.capacity).toMatchObject({ totalBytes: 100 * GiB, provisionedBytes: 14 * GiB, claimedBytes: 4 * GiB, usableBytes: 82 * GiB });
    expect(model.volumeCount).toBe(4);

    // Committing the create's claim as it becomes available moves its bytes from claimed to provisioned.
    await store.transaction(async (trx) => {
      await volumes.update(trx, idOf('volume', ids.get('creating') ?? ''), { state: 'available' });
      await claims.commit(trx, ids.get('creating') ?? '');
    });
    expect((await backends.usage(store.db, [a.id])).get(a.id)).toEqual({ provisionedBytes: 15 * GiB, claimedBytes: 3 * GiB, volumeCount: 4 });
  });

  it('counts a reverting volume as provisioned and live: its bytes stay on the backend during the revert', async () => {
    const a = backendRow({ name: 'a', total_bytes: 100 * GiB });
    await backends.insert(store.db, a);
    await volumes.insert(store.db, volumeRow({ backend_id: a.id, state: 'reverting', size_bytes: 7 * GiB }));
    await volumes.insert(store.db, volumeRow({ backend_id: a.id, state: 'available', size_bytes: 1 * GiB }));
    expect((await backends.usage(store.db, [a.id])).get(a.id)).toEqual({ provisionedBytes: 8 * GiB, claimedBytes: 0, volumeCount: 2 });
    expect(toBackend(a, (await backends.usage(store.db)).get(a.id)).capacity.usableBytes).toBe(92 * GiB);
  });

  it('keeps backend names unique', async () => {
    await backends.insert(store.db, backendRow({ name: 'same' }));
    await expect(backends.insert(store.db, backendRow({ name: 'same' }))).rejects.toThrow();
  });
});
