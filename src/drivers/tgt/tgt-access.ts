import { isIP } from 'node:net';
import { StowageError } from '../../core/errors.js';
import type { GrantRequest, HostIdentity } from '../sdk/types.js';
import { chapDigest, chapDigestMatches, type LedgerGrant } from './grant-ledger.js';
import { INITIATOR_NAME_RE } from './tgt-config.js';

/** A CHAP user as the core hands it over (tgtd takes it on its command line). */
const CHAP_USER_RE = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}$/;
/** A CHAP secret: 12–255 printable characters without spaces. */
const CHAP_SECRET_RE = /^[\x21-\x7e]{12,255}$/;

/** Throws VALIDATION_FAILED unless the host's addresses are IPs and its name an iqn./eui./naa. name. */
export function assertHost(host: HostIdentity): void {
  for (const a of host.addresses) {
    if (isIP(a) === 0) throw new StowageError('VALIDATION_FAILED', `tgt driver: host ${host.name} address ${JSON.stringify(a)} is not an IP address`, { host: host.name });
  }
  if (host.initiatorName !== undefined && !INITIATOR_NAME_RE.test(host.initiatorName)) {
    throw new StowageError('VALIDATION_FAILED', `tgt driver: host ${host.name} initiator name ${JSON.stringify(host.initiatorName)} is not an iqn./eui./naa. name`, { host: host.name });
  }
  if (host.addresses.length === 0 && host.initiatorName === undefined) {
    throw new StowageError('VALIDATION_FAILED', `tgt driver: host ${host.name} has neither an address nor an initiator name to grant access to`, { host: host.name });
  }
}

/** Throws VALIDATION_FAILED when the grant's CHAP user or secret cannot be given to tgtd. */
export function assertChap(grant: GrantRequest): void {
  if (!grant.chap) return;
  if (!CHAP_USER_RE.test(grant.chap.user)) throw new StowageError('VALIDATION_FAILED', `tgt driver: CHAP user ${JSON.stringify(grant.chap.user)} is not allowed (letters, digits, . _ : @ -; at most 100)`, {});
  if (!CHAP_SECRET_RE.test(grant.chap.secret)) throw new StowageError('VALIDATION_FAILED', 'tgt driver: CHAP secret must be 12-255 printable characters without spaces', {});
}

/**
 * The tgtd account name for a grant: `<chap user>.<volume id>` (no `@`, so it fits in iscsi://
 * URLs). tgtd accounts are global with one password each, while the core reuses one CHAP user per
 * host with a different secret per volume; a per-volume account keeps every grant's secret valid.
 * Hosts get this name in ConnectionInfo.chapUser.
 */
export function tgtAccountName(chapUser: string, volumeId: string): string {
  return `${chapUser}.${volumeId}`;
}

/** One ACL rule for tgt: address (`-I`) or initiator name (`-Q`). */
export interface AclEntry {
  readonly kind: 'address' | 'initiator';
  readonly value: string;
}

/**
 * The ACL entries tgt binds for a host. Address and name rules are ORed by tgt and the name is
 * chosen by the client, so a name rule is only bound for hosts that have no address.
 */
export function aclEntriesOf(host: { readonly addresses: readonly string[]; readonly initiatorName?: string }): AclEntry[] {
  if (host.addresses.length > 0) return host.addresses.map((value) => ({ kind: 'address', value }));
  return host.initiatorName === undefined ? [] : [{ kind: 'initiator', value: host.initiatorName }];
}

/** tgt has no per-initiator read-only: the LUN is read-only only when every grant is `ro`. */
export function lunReadonlyFor(grants: readonly { readonly mode: 'rw' | 'ro' }[]): boolean {
  return grants.length > 0 && grants.every((g) => g.mode === 'ro');
}

/** The ledger record of a grant on a volume (keeps the old secret digest when the secret is unchanged). */
export function ledgerEntry(volumeId: string, grant: GrantRequest, previous: LedgerGrant | undefined): LedgerGrant {
  const { host, mode, chap } = grant;
  const digest = chap ? (chapDigestMatches(previous?.chapDigest, chap.secret) ? previous?.chapDigest : chapDigest(chap.secret)) : undefined;
  return {
    host: host.name,
    addresses: [...host.addresses],
    ...(host.initiatorName !== undefined ? { initiatorName: host.initiatorName } : {}),
    mode,
    ...(chap ? { chapUser: tgtAccountName(chap.user, volumeId) } : {}),
    ...(digest !== undefined ? { chapDigest: digest } : {}),
  };
}
