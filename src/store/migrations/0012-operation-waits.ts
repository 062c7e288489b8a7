import type { Kysely } from 'kysely';

/**
 * An operation waiting for something outside (a storage node that does not answer) gives its
 * worker back: it is requeued with `not_before` and says why in `waiting_reason`, so one offline
 * node never holds every worker.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('operations').addColumn('not_before', 'text').execute();
  await db.schema.alterTable('operations').addColumn('waiting_reason', 'text').execute();
}
