import { DEFAULT_TENANT_ID } from '../core/ids.js';
import { hashToken } from '../core/token-hash.js';
import { jsonListHolding, nowIso, readJson, writeJson } from './json.js';
import { keysetPage, type PageRequest } from './keyset-page.js';
import type { ApiTokenRow, TenantRow, UserRow } from './schema.js';
import type { Executor } from './store.js';

/** A token to store: only its hash is kept. */
export interface NewToken {
  readonly id: string;
  readonly tenantId: string;
  readonly name: string;
  readonly token: string;
  readonly role: string;
  readonly userId?: string | null;
  readonly expiresAt?: string | null;
  readonly scope?: string | null;
}

/** Tenants, their users and API tokens (hashed). */
export class TenantRepository {
  /** Creates the default tenant if missing; safe to call from concurrent replicas. */
  async ensureDefaultTenant(db: Executor): Promise<void> {
    await db.insertInto('tenants')
      .values({ id: DEFAULT_TENANT_ID, name: 'default', created_at: nowIso() })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
  }

  async insertTenant(db: Executor, t: { id: string; name: string; description: string }): Promise<void> {
    const at = nowIso();
    await db.insertInto('tenants').values({ id: t.id, name: t.name, description: t.description, created_at: at, updated_at: at }).execute();
  }

  async findTenantById(db: Executor, id: string): Promise<TenantRow | undefined> {
    return db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async findTenantByName(db: Executor, name: string): Promise<TenantRow | undefined> {
    return db.selectFrom('tenants').selectAll().where('name', '=', name).executeTakeFirst();
  }

  async pageTenants(db: Executor, page: PageRequest): Promise<{ rows: TenantRow[]; nextCursor: string | null }> {
    return keysetPage(db.selectFrom('tenants').selectAll(), 'name', page);
  }

  async updateTenant(db: Executor, id: string, patch: { description?: string }): Promise<void> {
    await db.updateTable('tenants').set({ ...patch, updated_at: nowIso() }).where('id', '=', id).execute();
  }

  async deleteTenant(db: Executor, id: string): Promise<void> {
    await db.deleteFrom('tenants').where('id', '=', id).execute();
  }

  /** Marks a tenant as being deleted (kept if already marked); returns whether this call marked it. */
  async markDeleting(db: Executor, id: string, at: string): Promise<boolean> {
    const r = await db.updateTable('tenants').set({ deleting_at: at, updated_at: at }).where('id', '=', id).where('deleting_at', 'is', null).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Revokes every token still valid of a tenant and of its users; returns how many. */
  async revokeTokensOfTenant(db: Executor, tenantId: string, at: string): Promise<number> {
    const r = await db.updateTable('api_tokens').set({ revoked_at: at }).where('revoked_at', 'is', null)
      .where((eb) => eb.or([eb('tenant_id', '=', tenantId), eb('user_id', 'in', eb.selectFrom('users').select('users.id').where('users.tenant_id', '=', tenantId))]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  /**
   * Deletes a tenant whose resources are all settled, with every row it still has: its users and
   * their tokens, its history (operations, events, settled volumes, snapshots, grants, attachments,
   * migrations), idempotency keys and quotas. One call inside the caller's transaction.
   */
  async deleteTenantAndRows(db: Executor, tenantId: string): Promise<void> {
    await db.deleteFrom('api_tokens').where('user_id', 'in', db.selectFrom('users').select('users.id').where('users.tenant_id', '=', tenantId)).execute();
    await db.deleteFrom('api_tokens').where('tenant_id', '=', tenantId).execute();
    await db.deleteFrom('users').where('tenant_id', '=', tenantId).execute();
    await db.deleteFrom('idempotency_keys').where('tenant_id', '=', tenantId).execute();
    await db.deleteFrom('events').where('tenant_id', '=', tenantId).execute();
    await db.deleteFrom('attachments').where('tenant_id', '=', tenantId).execute();
    await db.deleteFrom('migrations').where('tenant_id', '=', tenantId).execute();
    await db.deleteFrom('grants').where('tenant_id', '=', tenantId).execute();
    await db.deleteFrom('snapshots').where('tenant_id', '=', tenantId).execute();
    await db.deleteFrom('volumes').where('tenant_id', '=', tenantId).execute();
    await db.deleteFrom('operations').where('tenant_id', '=', tenantId).execute();
    await db.deleteFrom('quotas').where('tenant_id', '=', tenantId).execute();
    // Out of every restriction list: one left empty stays restricted (to nobody), never becomes shared.
    for (const table of ['backends', 'classes', 'hosts'] as const) {
      const rows = await db.selectFrom(table).select(['id', 'tenants']).where('tenants', 'like', jsonListHolding(tenantId)).execute();
      for (const r of rows) {
        const left = readJson<string[]>(r.tenants, []).filter((t) => t !== tenantId);
        await db.updateTable(table).set({ tenants: writeJson(left) }).where('id', '=', r.id).execute();
      }
    }
    await db.deleteFrom('tenants').where('id', '=', tenantId).execute();
  }

  async insertUser(db: Executor, u: { id: string; tenantId: string | null; name: string; role: string; kind: string; description: string }): Promise<void> {
    const at = nowIso();
    await db.insertInto('users').values({
      id: u.id, tenant_id: u.tenantId, name: u.name, role: u.role, kind: u.kind, description: u.description, created_at: at, updated_at: at,
    }).execute();
  }

  async findUserById(db: Executor, id: string): Promise<UserRow | undefined> {
    return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async findUserByName(db: Executor, name: string): Promise<UserRow | undefined> {
    return db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
  }

  /** One page of users by name; of one tenant when `tenantId` is given. */
  async pageUsers(db: Executor, page: PageRequest, tenantId?: string): Promise<{ rows: UserRow[]; nextCursor: string | null }> {
    let q = db.selectFrom('users').selectAll();
    if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId);
    return keysetPage(q, 'name', page);
  }

  async updateUser(db: Executor, id: string, patch: { role?: string; description?: string }): Promise<void> {
    await db.updateTable('users').set({ ...patch, updated_at: nowIso() }).where('id', '=', id).execute();
  }

  /** Deletes a user and every token it holds. */
  async deleteUser(db: Executor, id: string): Promise<void> {
    await db.deleteFrom('api_tokens').where('user_id', '=', id).execute();
    await db.deleteFrom('users').where('id', '=', id).execute();
  }

  async countUsers(db: Executor, tenantId: string): Promise<number> {
    const r = await db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async countTokens(db: Executor): Promise<number> {
    const r = await db.selectFrom('api_tokens').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async insertToken(db: Executor, t: NewToken): Promise<void> {
    await db.insertInto('api_tokens').values({
      id: t.id, tenant_id: t.tenantId, name: t.name, token_hash: hashToken(t.token), role: t.role, created_at: nowIso(), last_used_at: null,
      user_id: t.userId ?? null, expires_at: t.expiresAt ?? null, scope: t.scope ?? null,
    }).execute();
  }

  async findTokenByHash(db: Executor, tokenHash: string): Promise<ApiTokenRow | undefined> {
    return db.selectFrom('api_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
  }

  async findTokenById(db: Executor, id: string): Promise<ApiTokenRow | undefined> {
    return db.selectFrom('api_tokens').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /**
   * A user's token by name: the unrevoked one if there is one, else the newest revoked one. A name
   * is free again once its token is revoked, so one name may have several rows; whichever came
   * first must not hide the live one (a revoke by name would otherwise touch a dead token only).
   */
  async findTokenByName(db: Executor, userId: string, name: string): Promise<ApiTokenRow | undefined> {
    const named = db.selectFrom('api_tokens').selectAll().where('user_id', '=', userId).where('name', '=', name);
    return (await named.where('revoked_at', 'is', null).orderBy('created_at', 'desc').orderBy('id', 'desc').executeTakeFirst())
      ?? named.orderBy('created_at', 'desc').orderBy('id', 'desc').executeTakeFirst();
  }

  /** The tokens of one user (oldest first), revoked ones included. */
  async listTokensOf(db: Executor, userId: string): Promise<ApiTokenRow[]> {
    return db.selectFrom('api_tokens').selectAll().where('user_id', '=', userId).orderBy('created_at').orderBy('id').execute();
  }

  async revokeToken(db: Executor, id: string): Promise<boolean> {
    const r = await db.updateTable('api_tokens').set({ revoked_at: nowIso() }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Records a token's use (callers throttle: this is one write). */
  async touchToken(db: Executor, id: string, at: string): Promise<void> {
    await db.updateTable('api_tokens').set({ last_used_at: at }).where('id', '=', id).execute();
  }
}
