import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_TENANT_ID } from '../../src/core/ids.js';
import type { StowageEvent } from '../../src/core/schemas/event-schema.js';
import { EventRepository } from '../../src/store/event-repository.js';
import type { Store } from '../../src/store/store.js';
import { DIALECTS, openFreshStore } from './store-kit.js';

describe.each(DIALECTS)('events on %s', (dialect) => {
  const repo = new EventRepository();
  let store: Store;
  let close: () => Promise<void>;

  beforeEach(async () => {
    ({ store, close } = await openFreshStore(dialect));
  });
  afterEach(async () => {
    await close();
  });

  async function appendMany(n: number, resourceId = 'vol-a', resourceType = 'volume'): Promise<void> {
    for (let i = 0; i < n; i++) {
      await repo.append(store.db, {
        tenantId: DEFAULT_TENANT_ID, actor: 'admin', resourceType, resourceId, resourceName: 'a', action: 'step',
        from: `s${String(i)}`, to: `s${String(i + 1)}`, message: `event ${String(i)}`, details: { i },
      });
    }
  }

  it('keeps every field and numbers events in insertion order', async () => {
    await repo.append(store.db, {
      tenantId: DEFAULT_TENANT_ID, actor: 'alice', resourceType: 'volume', resourceId: 'vol-x', resourceName: 'x', action: 'resize',
      from: 'available', to: 'resizing', message: 'growing', details: { sizeBytes: 2048 }, operationId: 'op-1',
    });
    await appendMany(2);
    const page = await repo.list(store.db, { tenantId: null, limit: 10 });
    expect(page.items.map((e) => e.message)).toEqual(['event 1', 'event 0', 'growing']);
    const seqs = page.items.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
    expect(new Set(seqs).size).toBe(3);
    expect(page.items[2]).toMatchObject({
      actor: 'alice', resourceType: 'volume', resourceId: 'vol-x', resourceName: 'x', action: 'resize',
      fromState: 'available', toState: 'resizing', details: { sizeBytes: 2048 }, operationId: 'op-1',
    });
    expect(page.nextCursor).toBeNull();
  });

  it('pages backwards with a cursor over every event exactly once', async () => {
    await appendMany(25);
    const seen: StowageEvent[] = [];
    let before: number | undefined;
    for (let i = 0; i < 10; i++) {
      const page = await repo.list(store.db, { tenantId: null, limit: 10, ...(before !== undefined ? { before } : {}) });
      seen.push(...page.items);
      if (page.nextCursor === null) break;
      before = Number(page.nextCursor);
    }
    expect(seen).toHaveLength(25);
    expect(seen.map((e) => e.message)).toEqual(Array.from({ length: 25 }, (_, i) => `event ${String(24 - i)}`));
  });

  it('follows with `after`: oldest first, only newer events', async () => {
    await appendMany(5);
    const all = (await repo.list(store.db, { tenantId: null, limit: 100 })).items;
    const third = all[2];
    expect(third).toBeDefined();
    const after = await repo.list(store.db, { tenantId: null, limit: 100, after: third?.seq ?? 0 });
    expect(after.items.map((e) => e.message)).toEqual(['event 3', 'event 4']);
    const none = await repo.list(store.db, { tenantId: null, limit: 100, after: all[0]?.seq ?? 0 });
    expect(none.items).toEqual([]);
  });

  it('filters by resource and by type', async () => {
    await appendMany(3, 'vol-a');
    await appendMany(2, 'vol-b');
    await appendMany(4, 'bk-c', 'backend');
    expect((await repo.list(store.db, { tenantId: null, limit: 100, resourceId: 'vol-b' })).items).toHaveLength(2);
    expect((await repo.list(store.db, { tenantId: null, limit: 100, resourceType: 'volume' })).items).toHaveLength(5);
    expect((await repo.list(store.db, { tenantId: null, limit: 100, resourceType: 'backend' })).items.map((e) => e.resourceId)).toEqual(['bk-c', 'bk-c', 'bk-c', 'bk-c']);
  });
});
