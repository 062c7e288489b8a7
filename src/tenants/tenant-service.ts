import { randomBytes } from 'node:crypto';
import { StowageError } from '../core/errors.js';
import { DEFAULT_TENANT_ID, isId, newId } from '../core/ids.js';
import type { PageOf } from '../core/models.js';
import { assertValidName } from '../core/names.js';
import { ATTACHMENT_STATE_TABLE, GRANT_STATE_TABLE } from '../core/states.js';
import { statesWhere } from '../core/state-machine.js';
import {
  USER_ROLES, type CreateTenantInput, type CreateTokenInput, type CreateUserInput, type CreatedToken, type Tenant, type TenantUsage,
  type Token, type UpdateTenantInput, type UpdateUserInput, type User, type UserKind, type UserRole, type Whoami,
} from '../core/schemas/tenant-schema.js';
import type { Operation } from '../core/schemas/operation-schema.js';
import type { OperationEngine } from '../operations/engine.js';
import { nowIso, isUniqueViolation } from '../store/json.js';
import { toOperation } from '../store/operation-repository.js';
import type { PageRequest } from '../store/keyset-page.js';
import type { Repositories } from '../store/repositories.js';
import type { ApiTokenRow, TenantRow, UserRow } from '../store/schema.js';
import type { Executor, Store } from '../store/store.js';
import { resolveTenantRef } from './visibility.js';

/** Who holds an API token: the actor in events (`user/token`), tenant, role, and the token and user ids. */
export interface TokenHolder {
  readonly actor: string;
  readonly tenantId: string;
  readonly role: string;
  readonly tokenId: string;
  readonly tokenName: string;
  /** When the token stops working (ISO time), null for never: a cache of it must not outlive this. */
  readonly expiresAt: string | null;
  /** Null for an agent's token and a token made before users existed. */
  readonly user: { readonly id: string; readonly name: string; readonly kind: UserKind } | null;
  /** For an agent's token: the one host it acts for (id and name). */
  readonly host?: { readonly id: string; readonly name: string };
}

/** Who is asking, as the tenant service needs it to decide what they may see and do. */
export interface Caller {
  readonly tenantId: string;
  readonly role: string;
  readonly actor: string;
  readonly tokenId: string;
  readonly userId: string | null;
}

/** A role's rank: a token may be narrowed to a lower one, never raised. */
const ROLE_RANK: Readonly<Record<UserRole, number>> = { reader: 1, member: 2, admin: 3 };
const LIVE_GRANT_STATES = statesWhere(GRANT_STATE_TABLE, (s) => s.live);
const LIVE_ATTACHMENT_STATES = statesWhere(ATTACHMENT_STATE_TABLE, (s) => s.live);

function isUserRole(r: string): r is UserRole {
  return (USER_ROLES as readonly string[]).includes(r);
}

/** The lesser of a user's role and a token's scope. */
export function effectiveRole(userRole: string, scope: string | null): string {
  if (scope === null || !isUserRole(userRole) || !isUserRole(scope)) return userRole;
  return ROLE_RANK[scope] < ROLE_RANK[userRole] ? scope : userRole;
}

function tokenState(t: ApiTokenRow, now: string): Token['state'] {
  if (t.revoked_at !== null) return 'revoked';
  if (t.expires_at !== null && t.expires_at <= now) return 'expired';
  return 'active';
}

/** A new API token secret: `stw_` and 192 random bits. */
function newSecret(): string {
  return `stw_${randomBytes(24).toString('base64url')}`;
}

/**
 * Tenants, their users and API tokens (only hashes are stored). Admin-only operations are guarded by
 * the routes' permissions; what depends on who asks (a member's own tokens, another tenant's user
 * being 404) is decided here from the `Caller`.
 */
export class TenantService {
  constructor(private readonly store: Store, private readonly repos: Repositories, private readonly engine: OperationEngine) {}

  /** Creates the default tenant if missing; safe from concurrent replicas. */
  async ensureDefaultTenant(): Promise<void> {
    await this.repos.tenants.ensureDefaultTenant(this.store.db);
  }

  /**
   * On a store without any token, creates the system admin user `admin` and its token `bootstrap`
   * and returns the token (the only time it exists outside its hash); otherwise returns null.
   */
  async issueFirstAdminToken(): Promise<string | null> {
    if ((await this.repos.tenants.countTokens(this.store.db)) > 0) return null;
    const token = newSecret();
    await this.store.transaction(async (trx) => {
      let user = await this.repos.tenants.findUserByName(trx, 'admin');
      if (!user) {
        await this.repos.tenants.insertUser(trx, { id: newId('user'), tenantId: null, name: 'admin', role: 'admin', kind: 'user', description: 'created on the first start' });
        user = await this.repos.tenants.findUserByName(trx, 'admin');
      }
      await this.repos.tenants.insertToken(trx, { id: newId('token'), tenantId: DEFAULT_TENANT_ID, name: 'bootstrap', token, role: 'admin', userId: user?.id ?? null });
    });
    return token;
  }

  /**
   * The holder of the token with this sha256 hex hash; undefined for an unknown, revoked or expired
   * token, a deleted user, or a tenant being deleted (its tokens are revoked with the delete's
   * submit; this also refuses one a racing request made just then).
   */
  async holderOf(tokenHash: string): Promise<TokenHolder | undefined> {
    const holder = await this.tokenHolder(tokenHash);
    if (!holder) return undefined;
    const tenant = await this.repos.tenants.findTenantById(this.store.db, holder.tenantId);
    return tenant && tenant.deleting_at === null ? holder : undefined;
  }

  private async tokenHolder(tokenHash: string): Promise<TokenHolder | undefined> {
    const row = await this.repos.tenants.findTokenByHash(this.store.db, tokenHash);
    if (!row || tokenState(row, nowIso()) !== 'active') return undefined;
    const base = { tokenId: row.id, tokenName: row.name, expiresAt: row.expires_at };
    if (row.user_id !== null) {
      const user = await this.repos.tenants.findUserById(this.store.db, row.user_id);
      if (!user) return undefined;
      return {
        ...base, actor: `${user.name}/${row.name}`, tenantId: user.tenant_id ?? row.tenant_id, role: effectiveRole(user.role, row.scope),
        user: { id: user.id, name: user.name, kind: user.kind as UserKind },
      };
    }
    if (!row.host_id) return { ...base, actor: row.name, tenantId: row.tenant_id, role: row.role, user: null };
    const host = await this.repos.hosts.findById(this.store.db, row.host_id);
    return host ? { ...base, actor: row.name, tenantId: row.tenant_id, role: row.role, user: null, host: { id: host.id, name: host.name } } : undefined;
  }

  /** Records that a token was used (callers call this at most about once a minute per token). */
  async touch(tokenId: string): Promise<void> {
    await this.repos.tenants.touchToken(this.store.db, tokenId, nowIso());
  }

  // ---- tenants -------------------------------------------------------------------------------

  async resolveTenant(ref: string, db: Executor = this.store.db): Promise<TenantRow> {
    return resolveTenantRef(db, this.repos, ref);
  }

  async createTenant(input: CreateTenantInput): Promise<Tenant> {
    assertValidName(input.name, 'tenant name');
    const id = newId('tenant');
    try {
      await this.store.transaction(async (trx) => {
        if (await this.repos.tenants.findTenantByName(trx, input.name)) throw nameTaken('tenant', input.name);
        await this.repos.tenants.insertTenant(trx, { id, name: input.name, description: input.description ?? '' });
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw nameTaken('tenant', input.name);
      throw err;
    }
    return this.getTenant(id);
  }

  async getTenant(ref: string): Promise<Tenant> {
    const row = await this.resolveTenant(ref);
    return toTenant(row, await this.usageOf(this.store.db, row.id));
  }

  async listTenants(page: PageRequest): Promise<PageOf<Tenant>> {
    const { rows, nextCursor } = await this.repos.tenants.pageTenants(this.store.db, page);
    return { items: await Promise.all(rows.map(async (r) => toTenant(r, await this.usageOf(this.store.db, r.id)))), nextCursor };
  }

  async updateTenant(ref: string, input: UpdateTenantInput): Promise<Tenant> {
    const row = await this.resolveTenant(ref);
    await this.repos.tenants.updateTenant(this.store.db, row.id, input.description !== undefined ? { description: input.description } : {});
    return this.getTenant(row.id);
  }

  /** What a tenant owns that a delete without cascade refuses on. */
  async usageOf(db: Executor, tenantId: string): Promise<TenantUsage> {
    const count = async (q: Promise<{ n: number | string | bigint } | undefined>): Promise<number> => Number((await q)?.n ?? 0);
    const [users, volumes, snapshots, grants, attachments] = await Promise.all([
      this.repos.tenants.countUsers(db, tenantId),
      count(db.selectFrom('volumes').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).where('deleted_at', 'is', null).executeTakeFirst()),
      count(db.selectFrom('snapshots').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).where('deleted_at', 'is', null).executeTakeFirst()),
      count(db.selectFrom('grants').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).where('state', 'in', [...LIVE_GRANT_STATES]).executeTakeFirst()),
      count(db.selectFrom('attachments').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).where('state', 'in', [...LIVE_ATTACHMENT_STATES]).executeTakeFirst()),
    ]);
    return { users, volumes, snapshots, grants, attachments };
  }

  /**
   * Deletes a tenant; the default tenant (where system admins act) is never deleted. Without
   * `cascade`, one that still owns anything is refused with TENANT_NOT_EMPTY and the counts, and an
   * empty one is deleted at once (returns null). With `cascade`, the tenant is marked deleting and
   * its tokens revoked in the transaction that submits the `tenant.delete` operation, which deletes
   * everything it owns; returns that operation (the one already running, if a cascade was submitted
   * before and is not finished).
   */
  async deleteTenant(ref: string, opts: { readonly cascade: boolean; readonly actor: string }): Promise<Operation | null> {
    const op = await this.store.transaction(async (trx) => {
      const row = await this.resolveTenant(ref, trx);
      if (row.id === DEFAULT_TENANT_ID) throw new StowageError('INVALID_STATE', 'the default tenant is where system admins act and cannot be deleted', { tenant: row.name });
      const running = await this.repos.operations.findActiveForTarget(trx, row.id);
      if (running?.kind === 'tenant.delete') return running;
      const usage = await this.usageOf(trx, row.id);
      if (!opts.cascade) {
        const owned = Object.entries(usage).filter(([, n]) => n > 0);
        if (owned.length > 0) {
          throw new StowageError('TENANT_NOT_EMPTY', `tenant ${row.name} still owns ${owned.map(([k, n]) => `${String(n)} ${k}`).join(', ')}; delete them first, or delete the tenant with --cascade`, { tenant: row.name, counts: usage });
        }
        await this.repos.tenants.deleteTenantAndRows(trx, row.id);
        return null;
      }
      const at = nowIso();
      await this.repos.tenants.markDeleting(trx, row.id, at);
      await this.repos.tenants.revokeTokensOfTenant(trx, row.id, at);
      // Filed under the default tenant: the journal entry outlives the tenant it deletes.
      return this.engine.enqueue(trx, { kind: 'tenant.delete', tenantId: DEFAULT_TENANT_ID, targetType: 'tenant', targetId: row.id, actor: opts.actor, input: { name: row.name } });
    });
    if (!op) return null;
    this.engine.wake();
    return toOperation(op);
  }

  /** Refuses (INVALID_STATE) to add anything to a tenant a cascading delete is emptying. */
  private assertNotDeleting(t: TenantRow): void {
    if (t.deleting_at !== null) {
      throw new StowageError('INVALID_STATE', `tenant ${t.name} is being deleted (since ${t.deleting_at}); it takes no new users or tokens`, { tenant: t.name, deletingAt: t.deleting_at });
    }
  }

  // ---- users ---------------------------------------------------------------------------------

  async resolveUser(ref: string, db: Executor = this.store.db): Promise<UserRow> {
    const row = isId('user', ref) ? await this.repos.tenants.findUserById(db, ref) : await this.repos.tenants.findUserByName(db, ref);
    if (!row) throw new StowageError('USER_NOT_FOUND', `user "${ref}" does not exist; see \`stowage user list\``, { user: ref });
    return row;
  }

  /**
   * Creates a user: a system admin belongs to no tenant, a member or reader to exactly one. Only an
   * admin reaches this (the route's permission).
   */
  async createUser(input: CreateUserInput): Promise<User> {
    assertValidName(input.name, 'user name');
    if (input.role === 'admin' && input.tenant !== undefined) {
      throw new StowageError('VALIDATION_FAILED', 'an admin is a system admin and belongs to no tenant: drop --tenant, or give the role member or reader', {});
    }
    if (input.role !== 'admin' && input.tenant === undefined) {
      throw new StowageError('VALIDATION_FAILED', `a ${input.role} belongs to one tenant: pass --tenant`, {});
    }
    const id = newId('user');
    try {
      await this.store.transaction(async (trx) => {
        const tenant = input.tenant !== undefined ? await this.resolveTenant(input.tenant, trx) : null;
        if (tenant) this.assertNotDeleting(tenant);
        if (await this.repos.tenants.findUserByName(trx, input.name)) throw nameTaken('user', input.name);
        await this.repos.tenants.insertUser(trx, { id, tenantId: tenant?.id ?? null, name: input.name, role: input.role, kind: input.kind ?? 'user', description: input.description ?? '' });
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw nameTaken('user', input.name);
      throw err;
    }
    return this.getUser(id);
  }

  async getUser(ref: string): Promise<User> {
    return this.toUser(await this.resolveUser(ref));
  }

  async listUsers(page: PageRequest, tenantRef?: string): Promise<PageOf<User>> {
    const tenantId = tenantRef !== undefined ? (await this.resolveTenant(tenantRef)).id : undefined;
    const { rows, nextCursor } = await this.repos.tenants.pageUsers(this.store.db, page, tenantId);
    return { items: await Promise.all(rows.map((r) => this.toUser(r))), nextCursor };
  }

  async updateUser(ref: string, input: UpdateUserInput, caller: Caller): Promise<User> {
    const row = await this.resolveUser(ref);
    if (input.role !== undefined && input.role !== row.role) {
      // First: only admins get here, and an admin's only other roles are across kinds, so after that check this one could never be reached.
      if (row.id === caller.userId) throw new StowageError('FORBIDDEN', 'you cannot change your own role; ask another admin', { user: row.name });
      if ((input.role === 'admin') !== (row.role === 'admin')) {
        throw new StowageError('VALIDATION_FAILED', 'a system admin belongs to no tenant and a member or reader to one: create a new user instead of moving one across', { user: row.name });
      }
    }
    await this.repos.tenants.updateUser(this.store.db, row.id, { ...(input.role !== undefined ? { role: input.role } : {}), ...(input.description !== undefined ? { description: input.description } : {}) });
    return this.getUser(row.id);
  }

  /** Deletes a user and its tokens (they stop working at once on this replica, within seconds elsewhere). */
  async deleteUser(ref: string, caller: Caller): Promise<void> {
    const row = await this.resolveUser(ref);
    if (row.id === caller.userId) throw new StowageError('FORBIDDEN', 'you cannot delete yourself; ask another admin', { user: row.name });
    await this.store.transaction(async (trx) => this.repos.tenants.deleteUser(trx, row.id));
  }

  private async toUser(r: UserRow): Promise<User> {
    const tenant = r.tenant_id !== null ? await this.repos.tenants.findTenantById(this.store.db, r.tenant_id) : undefined;
    const now = nowIso();
    const tokens = (await this.repos.tenants.listTokensOf(this.store.db, r.id)).filter((t) => tokenState(t, now) === 'active').length;
    return {
      id: r.id, name: r.name, tenant: tenant?.name ?? null, tenantId: r.tenant_id, role: r.role as UserRole, kind: r.kind as UserKind,
      description: r.description, tokens, createdAt: r.created_at, updatedAt: r.updated_at,
    };
  }

  // ---- tokens --------------------------------------------------------------------------------

  /**
   * The user a token request is about: the caller, or (for an admin only) the user it names. A
   * non-admin naming anyone else gets USER_NOT_FOUND, so other users' names are not confirmed.
   */
  private async subjectOf(caller: Caller, userRef: string | undefined, db: Executor = this.store.db): Promise<UserRow> {
    if (userRef !== undefined && caller.role === 'admin') return this.resolveUser(userRef, db);
    const self = caller.userId !== null ? await this.repos.tenants.findUserById(db, caller.userId) : undefined;
    if (userRef !== undefined && (!self || (userRef !== self.name && userRef !== self.id))) {
      throw new StowageError('USER_NOT_FOUND', `user "${userRef}" does not exist; see \`stowage whoami\``, { user: userRef });
    }
    if (!self) {
      throw new StowageError('VALIDATION_FAILED', 'this token belongs to no user (it predates users); name one with --user, or log in with a user\'s token', {});
    }
    return self;
  }

  /** Creates a named token for the caller (or, by an admin, for a user it names); its secret is in the answer only. */
  async createToken(input: CreateTokenInput, caller: Caller): Promise<CreatedToken> {
    assertValidName(input.name, 'token name');
    const user = await this.subjectOf(caller, input.user);
    if (input.scope !== undefined && isUserRole(user.role) && ROLE_RANK[input.scope] > ROLE_RANK[user.role]) {
      throw new StowageError('FORBIDDEN', `a token can only narrow its user's role: ${user.name} is ${user.role}, so the scope ${input.scope} is refused`, { role: user.role, scope: input.scope });
    }
    if (caller.userId === user.id && input.scope === undefined && caller.role !== user.role && isUserRole(caller.role)) {
      // A narrowed token making a new one without a scope: the new one is no wider than the caller's own.
      input = { ...input, scope: caller.role };
    }
    // Whoever the token is for, the caller's own one included: a token narrowed to reader must not mint one scoped member.
    if (isUserRole(caller.role) && ROLE_RANK[effectiveRole(user.role, input.scope ?? null) as UserRole] > ROLE_RANK[caller.role]) {
      throw new StowageError('FORBIDDEN', `a token cannot carry more than the role of the token that makes it (${caller.role})`, { role: caller.role, ...(input.scope !== undefined ? { scope: input.scope } : {}) });
    }
    const secret = newSecret();
    const id = newId('token');
    const expiresAt = input.expiresInSeconds !== undefined ? new Date(Date.now() + input.expiresInSeconds * 1000).toISOString() : null;
    await this.store.transaction(async (trx) => {
      const tenant = user.tenant_id !== null ? await this.repos.tenants.findTenantById(trx, user.tenant_id) : undefined;
      if (tenant) this.assertNotDeleting(tenant);
      const clash = await this.repos.tenants.findTokenByName(trx, user.id, input.name);
      if (clash && clash.revoked_at === null) throw nameTaken('token', input.name, `revoke it first: stowage token revoke ${input.name}`);
      await this.repos.tenants.insertToken(trx, {
        id, tenantId: user.tenant_id ?? DEFAULT_TENANT_ID, name: input.name, token: secret, role: user.role, userId: user.id, expiresAt, scope: input.scope ?? null,
      });
    });
    const row = await this.repos.tenants.findTokenById(this.store.db, id);
    if (!row) throw new StowageError('INTERNAL', 'the token just created is gone', {});
    return { token: toToken(row, user), secret };
  }

  /** The tokens of the caller, or (for an admin) of the user it names. */
  async listTokens(caller: Caller, userRef?: string): Promise<Token[]> {
    const user = await this.subjectOf(caller, userRef);
    return (await this.repos.tenants.listTokensOf(this.store.db, user.id)).map((t) => toToken(t, user));
  }

  /**
   * Revokes a token by id, or by name among the caller's (or the named user's) tokens. A token
   * of someone else is TOKEN_NOT_FOUND unless the caller is an admin. Returns the revoked token's id.
   */
  async revokeToken(ref: string, caller: Caller, userRef?: string): Promise<string> {
    const notFound = (): StowageError => new StowageError('TOKEN_NOT_FOUND', `token "${ref}" does not exist; see \`stowage token list\``, { token: ref });
    let row: ApiTokenRow | undefined;
    if (isId('token', ref)) {
      row = await this.repos.tenants.findTokenById(this.store.db, ref);
      if (row && caller.role !== 'admin' && (row.user_id === null || row.user_id !== caller.userId)) row = undefined;
    } else {
      const user = await this.subjectOf(caller, userRef);
      row = await this.repos.tenants.findTokenByName(this.store.db, user.id, ref);
    }
    if (!row) throw notFound();
    if (row.host_id !== null) throw new StowageError('VALIDATION_FAILED', 'that is a host agent\'s credential: re-enroll or delete the host instead', {});
    await this.repos.tenants.revokeToken(this.store.db, row.id);
    return row.id;
  }

  async whoami(caller: Caller): Promise<Whoami> {
    const [user, tenant, token] = await Promise.all([
      caller.userId !== null ? this.repos.tenants.findUserById(this.store.db, caller.userId) : undefined,
      this.repos.tenants.findTenantById(this.store.db, caller.tenantId),
      this.repos.tenants.findTokenById(this.store.db, caller.tokenId),
    ]);
    return {
      user: user?.name ?? null, kind: (user?.kind as UserKind | undefined) ?? null, tenant: tenant?.name ?? caller.tenantId, tenantId: caller.tenantId, role: caller.role,
      token: { id: caller.tokenId, name: token?.name ?? caller.actor, expiresAt: token?.expires_at ?? null },
    };
  }
}

function nameTaken(what: string, name: string, hint?: string): StowageError {
  return new StowageError('NAME_TAKEN', `a ${what} named "${name}" already exists${hint ? `; ${hint}` : ''}`, { name });
}

function toTenant(r: TenantRow, usage: TenantUsage): Tenant {
  return { id: r.id, name: r.name, description: r.description, usage, deletingAt: r.deleting_at, createdAt: r.created_at, updatedAt: r.updated_at ?? r.created_at };
}

function toToken(t: ApiTokenRow, user: UserRow | null): Token {
  return {
    id: t.id, name: t.name, user: user?.name ?? null, role: effectiveRole(user?.role ?? t.role, t.scope), scope: t.scope, state: tokenState(t, nowIso()),
    expiresAt: t.expires_at, revokedAt: t.revoked_at, lastUsedAt: t.last_used_at, createdAt: t.created_at,
  };
}
