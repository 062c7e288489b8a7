import { sql, type Kysely } from 'kysely';

/** Hosts, grants (volume × host access, CHAP sealed) and snapshots. Immutable once released. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createTable('hosts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('initiator_name', 'text')
    .addColumn('addresses', 'text', (c) => c.notNull())
    .addColumn('zone', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('connectors', 'text', (c) => c.notNull())
    .addColumn('instances', 'text', (c) => c.notNull())
    .addColumn('agent_heartbeat_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema.createTable('grants')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('volume_id', 'text', (c) => c.notNull().references('volumes.id'))
    .addColumn('host_id', 'text', (c) => c.notNull().references('hosts.id'))
    .addColumn('mode', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('state_reason', 'text')
    .addColumn('chap_user', 'text')
    .addColumn('chap_secret_sealed', 'text')
    .addColumn('connection', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  // One live grant per volume and host.
  await db.schema.createIndex('grants_volume_host_live').on('grants').columns(['volume_id', 'host_id']).unique()
    .where(sql.ref('state'), '<>', 'revoked').execute();

  await db.schema.createTable('snapshots')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('volume_id', 'text', (c) => c.notNull().references('volumes.id'))
    .addColumn('backend_id', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('state_reason', 'text')
    .addColumn('size_bytes', 'bigint', (c) => c.notNull())
    .addColumn('driver_handle', 'text')
    .addColumn('method', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('deleted_at', 'text')
    .execute();
  await db.schema.createIndex('snapshots_tenant_name_live').on('snapshots').columns(['tenant_id', 'name']).unique()
    .where(sql.ref('state'), '<>', 'deleted').execute();
}
