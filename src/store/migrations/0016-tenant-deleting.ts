import type { Kysely } from 'kysely';

/**
 * Tenants get `deleting_at`: set when a cascading delete is submitted, so the tenant takes nothing
 * new (its tokens are revoked, no user or token is made in it) while the `tenant.delete` operation
 * destroys what it owns; null for a tenant in use. The row itself goes at the operation's end.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('tenants').addColumn('deleting_at', 'text').execute();
}
