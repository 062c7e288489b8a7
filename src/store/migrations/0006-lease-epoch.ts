import type { Kysely } from 'kysely';

/**
 * Operations carry a lease epoch (a fencing token), incremented on every claim or takeover; every
 * write a worker makes is conditioned on the epoch it claimed with. Immutable once released.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('operations').addColumn('lease_epoch', 'integer', (c) => c.notNull().defaultTo(0)).execute();
}
