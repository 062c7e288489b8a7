import type { CreatedToken } from '../../src/core/schemas/tenant-schema.js';
import type { JsonClient } from './server.js';

/** A user made through the admin API: its name, tenant and the secret of its first token. */
export interface TenantUser {
  readonly user: string;
  readonly tenant: string | null;
  readonly role: 'admin' | 'member' | 'reader';
  readonly token: string;
}

/**
 * Makes (through the real API, with an admin client) the tenant if it does not exist yet, a user of
 * it with `role`, and a token for that user; returns the token's secret. A system admin (`role:
 * 'admin'`) gets no tenant. Wrap the secret in the test's client (`new InjectClient(app, token)` or
 * `new ApiClient(url, token)`).
 */
export async function makeTenantUser(admin: JsonClient, o: { tenant: string | null; user: string; role: 'admin' | 'member' | 'reader'; kind?: 'user' | 'service' }): Promise<TenantUser> {
  if (o.tenant !== null) {
    const t = await admin.request('POST', '/v1/tenants', { body: { name: o.tenant } });
    if (t.status !== 201 && !(t.status === 409 && (t.body as { code?: string } | undefined)?.code === 'NAME_TAKEN')) {
      throw new Error(`POST /v1/tenants ${o.tenant}: ${String(t.status)} ${t.text}`);
    }
  }
  await admin.ok('POST', '/v1/users', 201, { body: { name: o.user, role: o.role, ...(o.tenant !== null ? { tenant: o.tenant } : {}), ...(o.kind ? { kind: o.kind } : {}) } });
  const created = await admin.ok<CreatedToken>('POST', '/v1/tokens', 201, { body: { name: 'first', user: o.user } });
  return { user: o.user, tenant: o.tenant, role: o.role, token: created.secret };
}
