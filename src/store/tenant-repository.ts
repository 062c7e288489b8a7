import { DEFAULT_TENANT_ID } from '../core/ids.js';
import { hashToken } from '../core/token-hash.js';
import { nowIso } from './json.js';
import type { ApiTokenRow } from './schema.js';
import type { Executor } from './store.js';

/** Tenants and API tokens (hashed). */
export class TenantRepository {
  /** Creates the default tenant if missing; safe to call from concurrent replicas. */
  async ensureDefaultTenant(db: Executor): Promise<void> {
    await db.insertInto('tenants')
      .values({ id: DEFAULT_TENANT_ID, name: 'default', created_at: nowIso() })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
  }

  async countTokens(db: Executor): Promise<number> {
    const r = await db.selectFrom('api_tokens').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async insertToken(db: Executor, t: { id: string; tenantId: string; name: string; token: string; role: string }): Promise<void> {
    await db.insertInto('api_tokens').values({
      id: t.id, tenant_id: t.tenantId, name: t.name, token_hash: hashToken(t.token), role: t.role, created_at: nowIso(), last_used_at: null,
    }).execute();
  }

  async findTokenByHash(db: Executor, tokenHash: string): Promise<ApiTokenRow | undefined> {
    return db.selectFrom('api_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
  }
}
