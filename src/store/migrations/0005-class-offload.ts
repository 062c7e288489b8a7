import type { Kysely } from 'kysely';

/** Storage classes may forbid offloaded clones (the data is then copied on the host). Immutable once released. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('classes').addColumn('offload', 'integer', (c) => c.notNull().defaultTo(1)).execute();
}
