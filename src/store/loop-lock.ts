import { sql } from 'kysely';
import type { Store } from './store.js';

/** Advisory lock keys of the background loops only one replica may run at a time (any constants; one per loop). */
export const LOOP_LOCK_KEYS = {
  'export-watch': 0x5704a71,
  'retention-sweep': 0x5704a72,
} as const;

/** A background loop that takes a replica-wide lock for each pass. */
export type LockedLoop = keyof typeof LOOP_LOCK_KEYS;

/**
 * Runs `fn` unless another replica is running the same loop: on PostgreSQL it holds a
 * transaction-scoped advisory lock (taken with try, so a replica that loses skips its pass and
 * the lock ends with the transaction, whatever happens to the pass); SQLite serves one process.
 * Resolves `{ ran: false }` when it skipped. A dialect quirk, so it lives behind the store.
 */
export async function runExclusively<T>(store: Store, loop: LockedLoop, fn: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }> {
  if (store.dialect !== 'postgres') return { ran: true, value: await fn() };
  return store.transaction(async (trx) => {
    const r = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(${LOOP_LOCK_KEYS[loop]}) as locked`.execute(trx);
    if (r.rows[0]?.locked !== true) return { ran: false } as const;
    return { ran: true, value: await fn() } as const;
  });
}
