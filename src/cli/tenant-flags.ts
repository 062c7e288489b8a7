import { Option, type Command } from 'commander';
import { usageError } from './errors.js';
import { collect } from './parse.js';
import type { StowageClient } from './client.js';
import type { OutputFormat } from './output.js';

/** `--all-tenants` of a list of tenant resources (admins only; the server refuses it for others). */
export function allTenantsOption(): Option {
  return new Option('--all-tenants', 'admins: every tenant\'s, grouped by tenant (-o json: every item has its tenantId)');
}

/**
 * A list as a person reads it: one table, or with --all-tenants one table per tenant under its name
 * (tenants by name, the items of each in the order the server answered).
 */
export async function tablesByTenant<T extends { readonly tenantId: string }>(
  client: StowageClient, format: OutputFormat, allTenants: boolean | undefined, items: readonly T[], table: (items: T[]) => string, empty: string,
): Promise<string> {
  if (format === 'json') return '';
  if (items.length === 0) return empty;
  if (allTenants !== true) return table([...items]);
  const names = new Map((await client.listTenants()).map((t) => [t.id, t.name]));
  const groups = new Map<string, T[]>();
  for (const item of items) groups.set(item.tenantId, [...(groups.get(item.tenantId) ?? []), item]);
  const nameOf = (id: string): string => names.get(id) ?? id;
  return [...groups.entries()]
    .sort(([a], [b]) => nameOf(a).localeCompare(nameOf(b)))
    .map(([id, group]) => `Tenant ${nameOf(id)}:\n${table(group)}`)
    .join('\n');
}

/** What `--tenant` / `--shared` ask of a backend, class or host. */
export interface RestrictionFlags {
  tenant?: string[];
  shared?: boolean;
}

/** `--tenant T` (repeatable) and `--shared`: whom a backend, class or host is for. */
export function addRestrictionFlags(cmd: Command): Command {
  return cmd
    .option('--tenant <tenant>', 'restrict it to this tenant, name or id (repeat for several; on update, replaces the list); other tenants do not see it', collect)
    .option('--shared', 'share it with every tenant (the default; on update, lifts a restriction)');
}

/** The `tenants` field of a create or update body for those flags (absent: unchanged on update, shared on create). */
export function restrictionBody(o: RestrictionFlags): { tenants?: string[] | null } {
  if (o.tenant && o.shared) throw usageError('VALIDATION_FAILED', 'pass --tenant or --shared, not both');
  if (o.tenant) return { tenants: [...new Set(o.tenant)] };
  return o.shared ? { tenants: null } : {};
}

/** Whom it is for, in words (admins' views; absent for other roles). */
export function restrictionWords(tenants: readonly string[] | null | undefined): string {
  if (tenants === undefined) return '-';
  return tenants === null ? 'every tenant (shared)' : `only ${tenants.join(', ')}`;
}
