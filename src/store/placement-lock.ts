import { sql } from 'kysely';
import type { Executor, Store } from './store.js';

/** The PostgreSQL advisory lock key every placement decision takes (any constant; one per purpose). */
const PLACEMENT_LOCK_KEY = 0x5704a70;

/**
 * Serializes placement decisions across replicas for the rest of the transaction: on PostgreSQL an
 * advisory transaction lock; SQLite transactions already run one at a time. A dialect quirk, so it
 * lives behind the store.
 */
export async function lockPlacement(db: Executor, dialect: Store['dialect']): Promise<void> {
  if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(${PLACEMENT_LOCK_KEY})`.execute(db);
}
