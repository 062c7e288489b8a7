import type { Kysely } from 'kysely';

/**
 * Idempotency-Key on every mutating route: the first request's fingerprint (method, path, body)
 * and, once answered, its response. Immutable once released.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createTable('idempotency_keys')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('fingerprint', 'text', (c) => c.notNull())
    .addColumn('status_code', 'integer')
    .addColumn('response', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('idempotency_keys_pk', ['tenant_id', 'key'])
    .execute();
}
