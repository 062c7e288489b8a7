import { randomBytes } from 'node:crypto';
import { StowageError } from './errors.js';

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
  node: 'node',
  user: 'usr',
} as const;

export type IdKind = keyof typeof ID_PREFIXES;
type Brand<K extends string> = string & { readonly __brand: K };
export type TenantId = Brand<'TenantId'>;
export type BackendId = Brand<'BackendId'>;
export type VolumeId = Brand<'VolumeId'>;
export type OperationId = Brand<'OperationId'>;
export type EventId = Brand<'EventId'>;
export type TokenId = Brand<'TokenId'>;
export type ClaimId = Brand<'ClaimId'>;
export type ClassId = Brand<'ClassId'>;
export type HostId = Brand<'HostId'>;
export type SnapshotId = Brand<'SnapshotId'>;
export type AttachmentId = Brand<'AttachmentId'>;
export type GrantId = Brand<'GrantId'>;
export type MigrationId = Brand<'MigrationId'>;
export type NodeId = Brand<'NodeId'>;
export type UserId = Brand<'UserId'>;

/** The branded id type of each resource kind, so `newId('volume')` is a VolumeId and not just a string. */
export interface IdTypes {
  tenant: TenantId;
  backend: BackendId;
  volume: VolumeId;
  operation: OperationId;
  event: EventId;
  token: TokenId;
  claim: ClaimId;
  class: ClassId;
  host: HostId;
  snapshot: SnapshotId;
  attachment: AttachmentId;
  grant: GrantId;
  migration: MigrationId;
  node: NodeId;
  user: UserId;
}
/** The id type of resource kind `K`. */
export type IdOf<K extends IdKind> = IdTypes[K];

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

/** A new random id with the resource's prefix (100 bits of entropy). */
export function newId<K extends IdKind>(kind: K): IdOf<K> {
  const bytes = randomBytes(20);
  let out = '';
  for (const b of bytes) out += ALPHABET.charAt(b & 31);
  return `${ID_PREFIXES[kind]}-${out}` as IdOf<K>;
}

const ID_RE = /^[a-z]{2,5}-[a-z2-7]{20}$/;

/** True when `value` has the shape of an id of `kind` (so a name cannot be mistaken for one). */
export function isId<K extends IdKind>(kind: K, value: string): value is IdOf<K> {
  return ID_RE.test(value) && value.startsWith(`${ID_PREFIXES[kind]}-`);
}

/** The id of the tenant every resource belongs to until tenancy lands. */
export const DEFAULT_TENANT_ID = 'tn-default00000000000000' as TenantId;

/**
 * `value` as an id of `kind`, for ids read back from columns or JSON that do not carry the brand
 * (an operation's target, a step's input). Throws INTERNAL when it is not shaped like one: the
 * store never holds such a value, so it is a bug, not bad input.
 */
export function idOf<K extends IdKind>(kind: K, value: string): IdOf<K> {
  if (!isId(kind, value) && !(kind === 'tenant' && value === DEFAULT_TENANT_ID)) {
    throw new StowageError('INTERNAL', `"${value}" is not a ${kind} id`, { kind, value });
  }
  return value as IdOf<K>;
}
