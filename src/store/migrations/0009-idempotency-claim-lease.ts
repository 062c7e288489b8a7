import type { Kysely } from 'kysely';

/**
 * An unanswered Idempotency-Key claim holds a lease (`claim_expires_at`) that the request serving it
 * renews; a claim whose process died mid-request expires within seconds, so a retry takes it over
 * instead of waiting for ever. Null only on claims made before this migration (treated as expired).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('idempotency_keys').addColumn('claim_expires_at', 'text').execute();
}
