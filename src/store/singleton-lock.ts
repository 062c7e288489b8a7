import { sql } from 'kysely';
import type { Store } from './store.js';

/** PostgreSQL advisory lock keys of the passes only one replica runs at a time (any constants; one per purpose). */
export const SINGLETON_LOCK_KEYS = {
  /** The storage-node monitor: one replica heartbeats and syncs the nodes. */
  nodeMonitor: 0x5704a71,
} as const;

/**
 * Runs `fn` only if no other replica is running the pass keyed `key`: on PostgreSQL it holds a
 * transaction-scoped advisory lock (tried, never waited for) for as long as `fn` runs, so the lock
 * goes with the connection if this replica dies; SQLite has one server, which always runs it.
 * `fn` writes through its own connections. True when `fn` ran.
 */
export async function runAsSingleton(store: Store, key: number, fn: () => Promise<void>): Promise<boolean> {
  if (store.dialect !== 'postgres') {
    await fn();
    return true;
  }
  return store.transaction(async (trx) => {
    const r = await sql<{ got: boolean }>`select pg_try_advisory_xact_lock(${key}) as got`.execute(trx);
    if (r.rows[0]?.got !== true) return false;
    await fn();
    return true;
  });
}
