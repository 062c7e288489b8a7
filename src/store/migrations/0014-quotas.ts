import type { Kysely } from 'kysely';

/**
 * Quotas per tenant and per class: one row per (tenant, class), where class_id '' (not NULL, so the
 * primary key works on both dialects) is the tenant as a whole. A null limit is unlimited.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createTable('quotas')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('class_id', 'text', (c) => c.notNull())
    .addColumn('max_volumes', 'integer')
    .addColumn('max_bytes', 'bigint')
    .addColumn('max_snapshots', 'integer')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('quotas_pk', ['tenant_id', 'class_id'])
    .execute();
}
