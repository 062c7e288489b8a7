import { randomBytes } from 'node:crypto';

/** Id prefixes per resource; an id is `<prefix>-<20 lowercase base32 chars>`. */
export const ID_PREFIXES = {
  tenant: 'tn',
  backend: 'bk',
  volume: 'vol',
  operation: 'op',
  event: 'ev',
  token: 'tok',
  claim: 'clm',
  class: 'cls',
  host: 'host',
  snapshot: 'snap',
  attachment: 'att',
  grant: 'gr',
  migration: 'mig',
} as const;

export type IdKind = keyof typeof ID_PREFIXES;
type Brand<K extends string> = string & { readonly __brand: K };
export type TenantId = Brand<'TenantId'>;
export type BackendId = Brand<'BackendId'>;
export type VolumeId = Brand<'VolumeId'>;
export type OperationId = Brand<'OperationId'>;

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

/** A new random id with the resource's prefix (100 bits of entropy). */
export function newId(kind: IdKind): string {
  const bytes = randomBytes(20);
  let out = '';
  for (const b of bytes) out += ALPHABET.charAt(b & 31);
  return `${ID_PREFIXES[kind]}-${out}`;
}

const ID_RE = /^[a-z]{2,5}-[a-z2-7]{20}$/;

/** True when `value` has the shape of an id of `kind` (so a name cannot be mistaken for one). */
export function isId(kind: IdKind, value: string): boolean {
  return ID_RE.test(value) && value.startsWith(`${ID_PREFIXES[kind]}-`);
}

/** The id of the tenant every resource belongs to until tenancy lands. */
export const DEFAULT_TENANT_ID = 'tn-default00000000000000' as TenantId;
