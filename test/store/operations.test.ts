import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/store.js';
import { OperationRepository } from '../../src/store/operation-repository.js';
import { nowIso } from '../../src/store/json.js';
import { DIALECTS, isoIn, openFreshStore, operationRow } from './store-kit.js';

describe.each(DIALECTS)('operation claims and leases on %s', (dialect) => {
  const repo = new OperationRepository();
  let store: Store;
  let url: string;
  let close: () => Promise<void>;

  beforeEach(async () => {
    ({ store, url, close } = await openFreshStore(dialect));
  });
  afterEach(async () => {
    await close();
  });

  it('lets exactly one of two concurrent claimers win, each time (two connections)', async () => {
    // A second store on the same database: on PostgreSQL a separate pool, like a second replica.
    const other = await openStore(url);
    try {
      for (let i = 0; i < 20; i++) {
        const op = operationRow();
        await repo.insert(store.db, op);
        const until = isoIn(60_000);
        const results = await Promise.all([
          repo.tryClaim(store.db, op.id, 'worker-a', nowIso(), until),
          repo.tryClaim(other.db, op.id, 'worker-b', nowIso(), until),
        ]);
        expect(results.filter(Boolean)).toHaveLength(1);
        const row = await repo.findById(store.db, op.id);
        expect(row?.state).toBe('running');
        expect(row?.attempts).toBe(1);
        expect(row?.lease_owner).toBe(results[0] ? 'worker-a' : 'worker-b');
      }
    } finally {
      await other.close();
    }
  });

  it('refuses a claim while the lease is live, and allows it once the lease expired', async () => {
    const op = operationRow();
    await repo.insert(store.db, op);
    expect(await repo.tryClaim(store.db, op.id, 'a', nowIso(), isoIn(60_000))).toBe(true);
    expect(await repo.tryClaim(store.db, op.id, 'b', nowIso(), isoIn(60_000))).toBe(false);
    expect((await repo.findById(store.db, op.id))?.lease_owner).toBe('a');

    // The owner dies: its lease runs out.
    await store.db.updateTable('operations').set({ lease_expires_at: isoIn(-1000) }).where('id', '=', op.id).execute();
    expect(await repo.listRunnable(store.db, nowIso(), 10)).toContain(op.id);
    expect(await repo.tryClaim(store.db, op.id, 'b', nowIso(), isoIn(60_000))).toBe(true);
    const row = await repo.findById(store.db, op.id);
    expect(row?.lease_owner).toBe('b');
    expect(row?.attempts).toBe(2);
  });

  it('a released waiting operation is queued with its reason, skipped until not_before, and claimed (reason cleared) after', async () => {
    const op = operationRow();
    await repo.insert(store.db, op);
    const lease = await repo.claim(store.db, op.id, 'a', nowIso(), isoIn(60_000));
    expect(lease).not.toBeNull();
    if (!lease) return;
    expect(await repo.releaseWaiting(store.db, op.id, lease, isoIn(60_000), 'waiting for node sn1: unreachable since 12:03:10')).toBe(true);
    const waiting = await repo.findById(store.db, op.id);
    expect(waiting).toMatchObject({ state: 'queued', lease_owner: null, lease_expires_at: null, waiting_reason: 'waiting for node sn1: unreachable since 12:03:10' });
    expect(await repo.listRunnable(store.db, nowIso(), 10)).not.toContain(op.id);
    expect(await repo.tryClaim(store.db, op.id, 'b', nowIso(), isoIn(60_000))).toBe(false);
    // The released lease can write nothing more.
    expect(await repo.releaseWaiting(store.db, op.id, lease, isoIn(1), 'x')).toBe(false);
    // Once not_before has passed it is runnable again, and the claim clears the reason.
    await store.db.updateTable('operations').set({ not_before: isoIn(-1000) }).where('id', '=', op.id).execute();
    expect(await repo.listRunnable(store.db, nowIso(), 10)).toContain(op.id);
    expect(await repo.tryClaim(store.db, op.id, 'b', nowIso(), isoIn(60_000))).toBe(true);
    expect(await repo.findById(store.db, op.id)).toMatchObject({ state: 'running', lease_owner: 'b', waiting_reason: null, not_before: null, attempts: 2 });
  });

  it('renews only for the owner; the old owner of a taken-over operation cannot renew or record steps', async () => {
    const op = operationRow();
    await repo.insert(store.db, op);
    const a = await repo.claim(store.db, op.id, 'a', nowIso(), isoIn(60_000));
    expect(a).toEqual({ owner: 'a', epoch: 1 });
    if (!a) return;
    const stranger = { owner: 'stranger', epoch: a.epoch };
    expect(await repo.renewLease(store.db, op.id, a, isoIn(120_000))).toBe(true);
    expect(await repo.renewLease(store.db, op.id, stranger, isoIn(120_000))).toBe(false);
    expect(await repo.recordStep(store.db, op.id, stranger, [{ name: 'provision', at: nowIso() }], 'activate')).toBe(false);

    await store.db.updateTable('operations').set({ lease_expires_at: isoIn(-1) }).where('id', '=', op.id).execute();
    const b = await repo.claim(store.db, op.id, 'b', nowIso(), isoIn(60_000));
    expect(b).toEqual({ owner: 'b', epoch: 2 });
    if (!b) return;
    expect(await repo.renewLease(store.db, op.id, a, isoIn(120_000))).toBe(false);
    expect(await repo.recordStep(store.db, op.id, a, [{ name: 'provision', at: nowIso() }], 'activate')).toBe(false);
    expect(await repo.recordStep(store.db, op.id, b, [{ name: 'provision', at: nowIso() }], 'activate')).toBe(true);
    const row = await repo.findById(store.db, op.id);
    expect(row?.step).toBe('activate');
    expect(JSON.parse(row?.steps_done ?? '[]')).toMatchObject([{ name: 'provision' }]);
  });

  it('fences every write of a worker by its epoch: the same owner with an older epoch changes nothing', async () => {
    const op = operationRow();
    await repo.insert(store.db, op);
    const first = await repo.claim(store.db, op.id, 'w', nowIso(), isoIn(60_000));
    await store.db.updateTable('operations').set({ lease_expires_at: isoIn(-1) }).where('id', '=', op.id).execute();
    // The same worker name claims again (a restarted process reusing its name): only the new epoch counts.
    const second = await repo.claim(store.db, op.id, 'w', nowIso(), isoIn(60_000));
    if (!first || !second) throw new Error('claims failed');
    expect(second.epoch).toBe(first.epoch + 1);
    expect(await repo.setInput(store.db, op.id, first, { stale: true })).toBe(false);
    expect(await repo.setProgress(store.db, op.id, first, 0.5)).toBe(false);
    expect(await repo.finish(store.db, op.id, first, 'failed', null, { code: 'INTERNAL', message: 'stale', details: {} })).toBe(false);
    expect(await store.transaction((trx) => repo.lockIfHeld(trx, store.dialect, op.id, first))).toBe(false);
    expect(await store.transaction((trx) => repo.lockIfHeld(trx, store.dialect, op.id, second))).toBe(true);
    expect(await repo.findById(store.db, op.id)).toMatchObject({ state: 'running', input: '{}', progress: null, error: null, lease_epoch: 2 });
    expect(await repo.setInput(store.db, op.id, second, { fresh: true })).toBe(true);
    expect(await repo.finish(store.db, op.id, second, 'succeeded', {}, null)).toBe(true);
    expect(await store.transaction((trx) => repo.lockIfHeld(trx, store.dialect, op.id, second))).toBe(false);
  });

  it('lists runnable operations oldest first: queued and expired, not live-leased', async () => {
    const queued = operationRow({ created_at: '2026-01-01T00:00:01.000Z' });
    const expired = operationRow({ state: 'running', lease_owner: 'x', lease_expires_at: isoIn(-5000), created_at: '2026-01-01T00:00:00.000Z' });
    const live = operationRow({ state: 'running', lease_owner: 'y', lease_expires_at: isoIn(60_000), created_at: '2026-01-01T00:00:02.000Z' });
    const failed = operationRow({ state: 'failed', created_at: '2026-01-01T00:00:03.000Z' });
    for (const o of [queued, expired, live, failed]) await repo.insert(store.db, o);
    expect(await repo.listRunnable(store.db, nowIso(), 10)).toEqual([expired.id, queued.id]);
    expect(await repo.listRunnable(store.db, nowIso(), 1)).toEqual([expired.id]);
  });

  it('finds an operation by its idempotency key, and keys are unique per tenant', async () => {
    const op = operationRow({ idempotency_key: 'key-1' });
    await repo.insert(store.db, op);
    expect((await repo.findByIdempotencyKey(store.db, op.tenant_id, 'key-1'))?.id).toBe(op.id);
    await expect(repo.insert(store.db, operationRow({ idempotency_key: 'key-1' }))).rejects.toThrow();
    // Many operations without a key are fine.
    await repo.insert(store.db, operationRow());
    await repo.insert(store.db, operationRow());
  });
});
