import { aclEntriesOf } from './tgt-access.js';
import { VOLUME_LUN } from './tgt-exports.js';
import type { TgtTarget } from './tgtadm-show.js';

/** One volume tgtd should serve: its id (the target is `<iqnPrefix>:<volumeId>`) and the hosts its ACL lets in. */
export interface ExpectedTarget {
  readonly volumeId: string;
  readonly hosts: readonly { readonly addresses: readonly string[]; readonly initiatorName?: string }[];
}

/**
 * What `targets` (one `tgtadm --op show --mode target`) lacks of `expected`, named as the
 * reconciler names what it restores: `target:<id>` when the target is gone (a restarted tgtd keeps
 * nothing), `lun:<id>` when LUN 1 is, `acl:<id>:<address or initiator>` for each missing ACL entry.
 * Pure; accounts and orphans are left to the full reconcile.
 */
export function tgtDrift(iqnOf: (volumeId: string) => string, targets: readonly TgtTarget[], expected: readonly ExpectedTarget[]): string[] {
  const byIqn = new Map(targets.map((t) => [t.iqn, t]));
  const missing: string[] = [];
  for (const e of expected) {
    const t = byIqn.get(iqnOf(e.volumeId));
    if (!t) { missing.push(`target:${e.volumeId}`); continue; }
    if (!t.luns.some((l) => l.lun === VOLUME_LUN)) missing.push(`lun:${e.volumeId}`);
    const have = new Set([...t.aclAddresses, ...t.aclInitiators]);
    for (const acl of e.hosts.flatMap((h) => aclEntriesOf(h))) if (!have.has(acl.value)) missing.push(`acl:${e.volumeId}:${acl.value}`);
  }
  return missing;
}
