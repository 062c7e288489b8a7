import type { Kysely } from 'kysely';

/**
 * Retention (`src/reconcile/retention-sweeper.ts`): indexes that find the oldest finished
 * operations of one state and the oldest events in order, so an hourly sweep reads one batch off
 * an index instead of scanning the journal; an index on claims by operation, for the "still held by
 * a live claim" check made for every operation the sweep deletes; and one row saying what the last
 * sweep did (upserted, so it never grows). Immutable once released.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('operations_state_finished').on('operations').columns(['state', 'finished_at', 'id']).execute();
  await db.schema.createIndex('events_at').on('events').columns(['at', 'seq']).execute();
  await db.schema.createIndex('claims_operation').on('claims').columns(['operation_id', 'state']).execute();
  await db.schema.createTable('retention_sweeps')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('operations_pruned', 'integer', (c) => c.notNull())
    .addColumn('events_pruned', 'integer', (c) => c.notNull())
    .addColumn('operations_archived', 'integer', (c) => c.notNull())
    .addColumn('events_archived', 'integer', (c) => c.notNull())
    .addColumn('complete', 'integer', (c) => c.notNull())
    .execute();
}
