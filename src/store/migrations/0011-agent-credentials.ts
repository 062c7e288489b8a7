import type { Kysely } from 'kysely';

/**
 * Host agents get credentials of their own: a token row scoped to one host (`host_id`, role
 * `agent`), obtained with a one-time enrollment token kept (hashed) on the host until used.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('api_tokens').addColumn('host_id', 'text').execute();
  await db.schema.alterTable('hosts').addColumn('enroll_token_hash', 'text').execute();
  await db.schema.alterTable('hosts').addColumn('enroll_expires_at', 'text').execute();
}
