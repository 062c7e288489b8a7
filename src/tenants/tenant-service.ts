import { randomBytes } from 'node:crypto';
import { DEFAULT_TENANT_ID, newId } from '../core/ids.js';
import type { Repositories } from '../store/repositories.js';
import type { Store } from '../store/store.js';

/** Who holds an API token: its name (the actor in events), tenant and role. */
export interface TokenHolder {
  readonly actor: string;
  readonly tenantId: string;
  readonly role: string;
}

/** Tenants and their API tokens (only hashes are stored). */
export class TenantService {
  constructor(private readonly store: Store, private readonly repos: Repositories) {}

  /** Creates the default tenant if missing; safe from concurrent replicas. */
  async ensureDefaultTenant(): Promise<void> {
    await this.repos.tenants.ensureDefaultTenant(this.store.db);
  }

  /**
   * On a store without any token, creates the admin token of the default tenant and returns it
   * (the only time it exists outside its hash); otherwise returns null and creates nothing.
   */
  async issueFirstAdminToken(): Promise<string | null> {
    if ((await this.repos.tenants.countTokens(this.store.db)) > 0) return null;
    const token = `stw_${randomBytes(24).toString('base64url')}`;
    await this.repos.tenants.insertToken(this.store.db, { id: newId('token'), tenantId: DEFAULT_TENANT_ID, name: 'admin', token, role: 'admin' });
    return token;
  }

  /** The holder of the token with this sha256 hex hash, or undefined for an unknown token. */
  async holderOf(tokenHash: string): Promise<TokenHolder | undefined> {
    const row = await this.repos.tenants.findTokenByHash(this.store.db, tokenHash);
    return row ? { actor: row.name, tenantId: row.tenant_id, role: row.role } : undefined;
  }
}
