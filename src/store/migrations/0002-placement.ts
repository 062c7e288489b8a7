import type { Kysely } from 'kysely';

/** Storage classes, capacity claims, and the class a volume was created with. Immutable once released. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createTable('classes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('zone', 'text')
    .addColumn('required_tags', 'text', (c) => c.notNull())
    .addColumn('forbidden_tags', 'text', (c) => c.notNull())
    .addColumn('required_capabilities', 'text', (c) => c.notNull())
    .addColumn('policy', 'text', (c) => c.notNull())
    .addColumn('is_default', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();

  // No foreign key to backends: finished claims are history and must not block deleting a backend.
  await db.schema.createTable('claims')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('backend_id', 'text', (c) => c.notNull())
    .addColumn('resource_type', 'text', (c) => c.notNull())
    .addColumn('resource_id', 'text', (c) => c.notNull())
    .addColumn('operation_id', 'text')
    .addColumn('bytes', 'bigint', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('claims_backend_state').on('claims').columns(['backend_id', 'state']).execute();
  await db.schema.createIndex('claims_resource').on('claims').columns(['resource_id', 'state']).execute();
  await db.schema.createIndex('claims_state_expiry').on('claims').columns(['state', 'expires_at']).execute();

  await db.schema.alterTable('volumes').addColumn('class_id', 'text').execute();
}
