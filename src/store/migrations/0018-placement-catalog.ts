import { sql, type Kysely } from 'kysely';
import type { MigrationDialect } from './index.js';

/** The backend columns a placement filter or weigher reads, other than the capacity figures a probe refreshes. */
const BACKEND_COLUMNS = [
  'name', 'kind', 'role', 'state', 'cost', 'tags', 'zone', 'overcommit_ratio', 'reserved_percent',
  'capabilities_reported', 'capabilities_overrides', 'node_id', 'tenants',
] as const;
/** The node columns placement reads (its `node` filter). */
const NODE_COLUMNS = ['name', 'state', 'admin_state'] as const;

/**
 * `placement_catalog`: one row whose `version` moves whenever a backend or node changes in a way
 * placement cares about (registered, removed, or any column above changed), by triggers, so every
 * writer counts (this replica, another one, an operator's manual edit). A replica keeps the backends
 * in memory and re-reads them only when the version moved, instead of on every create. Capacity
 * figures a probe rewrites every 30 s do not move it: placement verifies those for its winner under
 * the placement lock. Immutable once released.
 */
export async function up(db: Kysely<unknown>, dialect: MigrationDialect): Promise<void> {
  await db.schema.createTable('placement_catalog')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('version', 'bigint', (c) => c.notNull())
    .execute();
  await sql`insert into placement_catalog (id, version) values (1, 1)`.execute(db);
  const changed = (cols: readonly string[], oldRow: string, newRow: string, op: string): string =>
    cols.map((c) => `${oldRow}.${c} ${op} ${newRow}.${c}`).join(' or ');
  if (dialect === 'sqlite') {
    for (const [table, cols] of [['backends', BACKEND_COLUMNS], ['nodes', NODE_COLUMNS]] as const) {
      const bump = 'update placement_catalog set version = version + 1 where id = 1;';
      await sql.raw(`create trigger ${table}_catalog_insert after insert on ${table} begin ${bump} end`).execute(db);
      await sql.raw(`create trigger ${table}_catalog_delete after delete on ${table} begin ${bump} end`).execute(db);
      await sql.raw(`create trigger ${table}_catalog_update after update on ${table} when ${changed(cols, 'old', 'new', 'is not')} begin ${bump} end`).execute(db);
    }
    return;
  }
  await sql.raw(`create function placement_catalog_bump() returns trigger language plpgsql as $$
    begin update placement_catalog set version = version + 1 where id = 1; return null; end $$`).execute(db);
  for (const [table, cols] of [['backends', BACKEND_COLUMNS], ['nodes', NODE_COLUMNS]] as const) {
    await sql.raw(`create trigger ${table}_catalog_insert_delete after insert or delete on ${table} for each statement execute function placement_catalog_bump()`).execute(db);
    await sql.raw(`create trigger ${table}_catalog_update after update on ${table} for each row when (${changed(cols, 'OLD', 'NEW', 'is distinct from')}) execute function placement_catalog_bump()`).execute(db);
  }
}
