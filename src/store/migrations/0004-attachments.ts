import { sql, type Kysely } from 'kysely';

/** Attachments (volume × host × instance), live migrations, and the multi-attach flag. Immutable once released. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('volumes').addColumn('multiattach', 'integer', (c) => c.notNull().defaultTo(0)).execute();

  await db.schema.createTable('attachments')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('volume_id', 'text', (c) => c.notNull().references('volumes.id'))
    .addColumn('host_id', 'text', (c) => c.notNull().references('hosts.id'))
    .addColumn('instance', 'text', (c) => c.notNull())
    .addColumn('mode', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('state_reason', 'text')
    .addColumn('grant_id', 'text')
    .addColumn('device_id', 'text')
    .addColumn('migration_id', 'text')
    .addColumn('reported_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('attachments_volume_live').on('attachments').columns(['volume_id', 'state']).execute();
  await db.schema.createIndex('attachments_host_live').on('attachments').columns(['host_id', 'state']).execute();
  // One live attachment of a volume per host and instance.
  await db.schema.createIndex('attachments_unique_live').on('attachments').columns(['volume_id', 'host_id', 'instance']).unique()
    .where(sql.ref('state'), '<>', 'gone').execute();

  await db.schema.createTable('migrations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('instance', 'text', (c) => c.notNull())
    .addColumn('from_host_id', 'text', (c) => c.notNull().references('hosts.id'))
    .addColumn('to_host_id', 'text', (c) => c.notNull().references('hosts.id'))
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('state_reason', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
}
