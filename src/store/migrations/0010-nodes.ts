import type { Kysely } from 'kysely';

/**
 * Storage nodes (`stowage node` on each storage server), the control plane's own TLS identities
 * (shared by every replica, keys sealed with the secret key), and the node a backend runs on
 * (null: its driver runs in the control plane, as the embedded `local` backend does).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createTable('nodes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('address', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('state_reason', 'text')
    .addColumn('admin_state', 'text', (c) => c.notNull().defaultTo('active'))
    .addColumn('version', 'text')
    .addColumn('boot_id', 'text')
    .addColumn('epoch', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('cert_pem', 'text')
    .addColumn('cert_fingerprint', 'text')
    .addColumn('cert_expires_at', 'text')
    .addColumn('enroll_token_hash', 'text')
    .addColumn('enroll_expires_at', 'text')
    .addColumn('last_heartbeat_at', 'text')
    .addColumn('clock_skew_ms', 'integer')
    .addColumn('unreachable_since', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createTable('control_identities')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('cert_pem', 'text', (c) => c.notNull())
    .addColumn('key_sealed', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.alterTable('backends').addColumn('node_id', 'text').execute();
  await db.schema.createIndex('backends_node').on('backends').column('node_id').execute();
}
