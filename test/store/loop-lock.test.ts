import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/store.js';
import { runExclusively } from '../../src/store/loop-lock.js';
import { DIALECTS, openFreshStore } from './store-kit.js';

describe.each(DIALECTS)('runExclusively on %s', (dialect) => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  it('runs the pass and returns its value', async () => {
    const fresh = await openFreshStore(dialect);
    closers.push(() => fresh.close());
    expect(await runExclusively(fresh.store, 'export-watch', () => Promise.resolve(42))).toEqual({ ran: true, value: 42 });
  });

  it.runIf(dialect === 'postgres')('lets one replica at a time run the loop: the other skips while a pass holds the lock, then runs', async () => {
    const fresh = await openFreshStore(dialect);
    closers.push(() => fresh.close());
    // A second replica: its own store (own pool) on the same database.
    const replica: Store = await openStore(fresh.url);
    closers.push(() => replica.close());

    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => { release = resolve; });
    let entered: () => void = () => undefined;
    const inPass = new Promise<void>((resolve) => { entered = resolve; });
    const first = runExclusively(fresh.store, 'export-watch', async () => { entered(); await held; return 'a'; });
    await inPass;
    expect(await runExclusively(replica, 'export-watch', () => Promise.resolve('b'))).toEqual({ ran: false });
    release();
    expect(await first).toEqual({ ran: true, value: 'a' });
    expect(await runExclusively(replica, 'export-watch', () => Promise.resolve('b'))).toEqual({ ran: true, value: 'b' });
  });
});
