import type { Kysely } from 'kysely';

/**
 * Tenants get a description; users (of one tenant, or system admins of none; people or service
 * accounts) own named API tokens that may expire, be revoked, and be narrowed to a lesser role
 * (`scope`). Tokens made before this migration keep working with no user (their name is the actor).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('tenants').addColumn('description', 'text', (c) => c.notNull().defaultTo('')).execute();
  await db.schema.alterTable('tenants').addColumn('updated_at', 'text').execute();
  await db.schema.createTable('users')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.references('tenants.id'))
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('users_tenant').on('users').column('tenant_id').execute();
  await db.schema.alterTable('api_tokens').addColumn('user_id', 'text').execute();
  await db.schema.alterTable('api_tokens').addColumn('expires_at', 'text').execute();
  await db.schema.alterTable('api_tokens').addColumn('revoked_at', 'text').execute();
  await db.schema.alterTable('api_tokens').addColumn('scope', 'text').execute();
  await db.schema.createIndex('api_tokens_user').on('api_tokens').column('user_id').execute();
}
