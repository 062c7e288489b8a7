import { StowageError } from '../core/errors.js';
import { DEFAULT_TENANT_ID, isId } from '../core/ids.js';
import { readJson, writeJson } from '../store/json.js';
import type { Repositories } from '../store/repositories.js';
import type { TenantRow } from '../store/schema.js';
import type { Executor } from '../store/store.js';

/**
 * Who may use a backend, a storage class or a host: every tenant (the column is NULL) or the tenants
 * it lists. A tenant that may not use one does not see it at all: a reference to it is NOT_FOUND,
 * lists and placement explanations leave it out, as if it did not exist.
 */

/** Whether a row's `tenants` column lets `tenantId` use it. */
export function visibleTo(tenants: string | null, tenantId: string): boolean {
  if (tenants === null) return true;
  return readJson<string[]>(tenants, []).includes(tenantId);
}

/** The tenant ids a row is restricted to, or null when it is shared. */
export function restrictedTo(tenants: string | null): string[] | null {
  return tenants === null ? null : readJson<string[]>(tenants, []);
}

/** Finds a tenant by id or name, or throws TENANT_NOT_FOUND (the one place a tenant reference is resolved). */
export async function resolveTenantRef(db: Executor, repos: Pick<Repositories, 'tenants'>, ref: string): Promise<TenantRow> {
  const row = isId('tenant', ref) || ref === DEFAULT_TENANT_ID ? await repos.tenants.findTenantById(db, ref) : await repos.tenants.findTenantByName(db, ref);
  if (!row) throw new StowageError('TENANT_NOT_FOUND', `tenant "${ref}" does not exist; see \`stowage tenant list\``, { tenant: ref });
  return row;
}

/**
 * The `tenants` column for a request's list of tenant names or ids (null: shared), each resolved
 * to its id; an unknown one is TENANT_NOT_FOUND and nothing is written.
 */
export async function tenantsColumn(db: Executor, repos: Repositories, refs: readonly string[] | null): Promise<string | null> {
  if (refs === null) return null;
  const ids: string[] = [];
  for (const ref of refs) {
    const row = await resolveTenantRef(db, repos, ref);
    if (!ids.includes(row.id)) ids.push(row.id);
  }
  return writeJson(ids.sort());
}

/** Names of the tenants a row is restricted to (for admins' views), or null when it is shared. */
export async function tenantNames(db: Executor, repos: Repositories, tenants: string | null): Promise<string[] | null> {
  const ids = restrictedTo(tenants);
  if (ids === null) return null;
  const names: string[] = [];
  for (const id of ids) names.push((await repos.tenants.findTenantById(db, id))?.name ?? id);
  return names.sort();
}

/** Who is looking: admins see every tenant's restricted resources and whom they are restricted to. */
export interface Viewer {
  readonly tenantId: string;
  readonly admin: boolean;
}

/** The view of internal callers and admin routes. */
export const ADMIN_VIEW: Viewer = { tenantId: DEFAULT_TENANT_ID, admin: true };

/** The kinds of resource a tenant owns: a non-admin's events and operations are only of these (never of backends, hosts or nodes). */
export const TENANT_RESOURCE_TYPES = ['volume', 'snapshot', 'grant', 'attachment', 'migration'] as const;
