import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isUniqueViolation, nowIso } from '../../src/store/json.js';
import type { Store } from '../../src/store/store.js';
import { VolumeRepository } from '../../src/store/volume-repository.js';
import { DIALECTS, openFreshStore, volumeRow } from './store-kit.js';

describe.each(DIALECTS)('volumes on %s', (dialect) => {
  const repo = new VolumeRepository();
  let store: Store;
  let close: () => Promise<void>;

  beforeEach(async () => {
    ({ store, close } = await openFreshStore(dialect));
  });
  afterEach(async () => {
    await close();
  });

  it('refuses a second live volume with the same name in a tenant', async () => {
    await repo.insert(store.db, volumeRow({ name: 'data' }));
    const err: unknown = await repo.insert(store.db, volumeRow({ name: 'data' })).then(() => null, (e: unknown) => e);
    expect(err).not.toBeNull();
    expect(isUniqueViolation(err)).toBe(true);
    const rows = await store.db.selectFrom('volumes').select('name').execute();
    expect(rows).toEqual([{ name: 'data' }]);
  });

  it('lets every state except deleted hold the name', async () => {
    for (const state of ['creating', 'available', 'resizing', 'deleting', 'error'] as const) {
      const first = volumeRow({ name: `n-${state}`, state });
      await repo.insert(store.db, first);
      const err: unknown = await repo.insert(store.db, volumeRow({ name: `n-${state}` })).then(() => null, (e: unknown) => e);
      expect(isUniqueViolation(err), `state ${state}`).toBe(true);
    }
  });

  it('frees the name of a deleted volume for reuse, any number of times, and keeps the history', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const v = volumeRow({ name: 'reused' });
      await repo.insert(store.db, v);
      ids.push(v.id);
      expect((await repo.findLiveByName(store.db, v.tenant_id, 'reused'))?.id).toBe(v.id);
      await repo.update(store.db, v.id, { state: 'deleted', deleted_at: nowIso() });
      expect(await repo.findLiveByName(store.db, v.tenant_id, 'reused')).toBeUndefined();
    }
    const all = await store.db.selectFrom('volumes').select(['id', 'state']).where('name', '=', 'reused').execute();
    expect(all.map((r) => r.id).sort()).toEqual([...ids].sort());
    expect(all.every((r) => r.state === 'deleted')).toBe(true);
  });

  it('scopes names to a tenant', async () => {
    await store.db.insertInto('tenants').values({ id: 'tn-other0000000000000000', name: 'other', created_at: nowIso() }).execute();
    await repo.insert(store.db, volumeRow({ name: 'shared' }));
    await repo.insert(store.db, volumeRow({ name: 'shared', tenant_id: 'tn-other0000000000000000' }));
    const n = await store.db.selectFrom('volumes').select('id').where('name', '=', 'shared').execute();
    expect(n).toHaveLength(2);
  });

  it('lists live volumes by name with a cursor, skipping deleted ones', async () => {
    const names = ['a1', 'a2', 'a3', 'a4', 'a5'];
    for (const name of names) await repo.insert(store.db, volumeRow({ name }));
    await repo.insert(store.db, volumeRow({ name: 'a0', state: 'deleted' }));
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 10; page++) {
      const r = await repo.list(store.db, { tenantId: 'tn-default00000000000000', limit: 2, ...(cursor ? { cursor } : {}) });
      seen.push(...r.rows.map((v) => v.name));
      if (r.nextCursor === null) break;
      cursor = r.nextCursor;
    }
    expect(seen).toEqual(names);
  });

  it('stores sizes above 2^32 exactly', async () => {
    const v = volumeRow({ size_bytes: 5 * 1024 ** 4 + 7 });
    await repo.insert(store.db, v);
    expect(Number((await repo.findById(store.db, v.id))?.size_bytes)).toBe(5 * 1024 ** 4 + 7);
  });
});
