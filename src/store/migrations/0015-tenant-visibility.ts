import type { Kysely } from 'kysely';

/**
 * Backends, storage classes and hosts are shared with every tenant or restricted to a list of them
 * (OpenNebula's datastore permissions, Cinder's private volume types). `tenants` is a JSON array of
 * tenant ids; NULL (every existing row) is shared, as everything was before.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  for (const table of ['backends', 'classes', 'hosts']) {
    await db.schema.alterTable(table).addColumn('tenants', 'text').execute();
  }
}
