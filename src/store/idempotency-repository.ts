import type { IdempotencyKeyRow } from './schema.js';
import type { Executor } from './store.js';

/** Idempotency keys: who claimed a key for which request, and the answer it got. */
export class IdempotencyRepository {
  /** Claims `key` for a request; false when the tenant already used it (a conflict on the key, atomic on both dialects). */
  async claim(db: Executor, row: Omit<IdempotencyKeyRow, 'status_code' | 'response'>): Promise<boolean> {
    const r = await db.insertInto('idempotency_keys').values({ ...row, status_code: null, response: null })
      .onConflict((oc) => oc.columns(['tenant_id', 'key']).doNothing()).executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) === 1;
  }

  async find(db: Executor, tenantId: string, key: string): Promise<IdempotencyKeyRow | undefined> {
    return db.selectFrom('idempotency_keys').selectAll().where('tenant_id', '=', tenantId).where('key', '=', key).executeTakeFirst();
  }

  /** Renews the lease of an unanswered claim (the request holding it is still running). */
  async renew(db: Executor, tenantId: string, key: string, claimExpiresAt: string): Promise<void> {
    await db.updateTable('idempotency_keys').set({ claim_expires_at: claimExpiresAt })
      .where('tenant_id', '=', tenantId).where('key', '=', key).where('status_code', 'is', null).execute();
  }

  /** Records the answer of the request that holds the claim. */
  async complete(db: Executor, tenantId: string, key: string, statusCode: number, response: string | null): Promise<void> {
    await db.updateTable('idempotency_keys').set({ status_code: statusCode, response }).where('tenant_id', '=', tenantId).where('key', '=', key).execute();
  }

  /** Drops a claim whose request failed (it changed nothing, so the key may be used again), or a stale one. */
  async release(db: Executor, tenantId: string, key: string, createdAt?: string): Promise<void> {
    let q = db.deleteFrom('idempotency_keys').where('tenant_id', '=', tenantId).where('key', '=', key).where('status_code', 'is', null);
    if (createdAt !== undefined) q = q.where('created_at', '=', createdAt);
    await q.execute();
  }
}
