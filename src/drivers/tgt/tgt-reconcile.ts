import { StowageError } from '../../core/errors.js';
import type { DriverHandle, GrantRequest, ReconcileOptions, ReconcileReport } from '../sdk/types.js';
import { chapDigestMatches, type GrantLedger } from './grant-ledger.js';
import { aclEntriesOf, assertChap, assertHost, ledgerEntry, lunReadonlyFor, tgtAccountName, type AclEntry } from './tgt-access.js';
import type { TgtExports } from './tgt-exports.js';

/** What a reconcile pass needs from the driver. */
export interface ReconcileContext {
  readonly exports: TgtExports;
  readonly ledger: GrantLedger;
  /** The LUN file of a backing handle. */
  fileOf(backing: DriverHandle): string;
}

/** One volume's desired exports. */
export interface DesiredExport {
  readonly volumeId: string;
  readonly backing: DriverHandle;
  readonly grants: readonly GrantRequest[];
}

interface PassState {
  readonly accounts: Set<string>;
  /** Accounts unbound from our targets in this pass (deleted at the end if nothing uses them). */
  readonly unbound: Set<string>;
  readonly wantedAccounts: Set<string>;
}

/** Restores one volume's export; what it changed goes into `restored`/`removed` as it happens (kept when a later step fails). */
async function reconcileOne(ctx: ReconcileContext, d: DesiredExport, pass: PassState, signal: AbortSignal, restored: string[], removed: string[]): Promise<void> {
  for (const g of d.grants) { assertHost(g.host); assertChap(g); }
  const ex = ctx.exports;
  const id = d.volumeId;
  const previous = await ctx.ledger.read(id);
  const entries = d.grants.map((g) => ledgerEntry(id, g, previous.find((p) => p.host === g.host.name)));
  await ctx.ledger.write(id, entries);
  const { target, changes } = await ex.ensureTarget(id, ctx.fileOf(d.backing), lunReadonlyFor(entries), signal);
  restored.push(...changes);

  const wantAcl = d.grants.flatMap((g) => aclEntriesOf(g.host));
  const have = new Set([...target.aclAddresses, ...target.aclInitiators]);
  for (const acl of wantAcl.filter((a) => !have.has(a.value))) {
    await ex.bindAcl(target.tid, acl.kind, acl.value, signal);
    restored.push(`acl:${id}:${acl.value}`);
  }
  const wantValues = new Set(wantAcl.map((a) => a.value));
  const stale: AclEntry[] = [
    ...target.aclAddresses.map((value) => ({ kind: 'address' as const, value })),
    ...target.aclInitiators.map((value) => ({ kind: 'initiator' as const, value })),
  ].filter((a) => !wantValues.has(a.value));
  for (const acl of stale) {
    await ex.unbindAcl(target.tid, acl.kind, acl.value, signal);
    removed.push(`acl:${id}:${acl.value}`);
  }
  if (stale.length > 0) {
    const gone = new Set(stale.map((a) => a.value));
    await ex.dropSessions(target, (s) => gone.has(s.initiator) || s.connections.some((c) => gone.has(c.address)), signal);
  }

  const wantUsers = new Set<string>();
  for (const g of d.grants) {
    if (!g.chap) continue;
    const user = tgtAccountName(g.chap.user, id);
    wantUsers.add(user);
    pass.wantedAccounts.add(user);
    const prev = previous.find((p) => p.host === g.host.name);
    const missing = !pass.accounts.has(user);
    const changed = prev?.chapUser === user && !chapDigestMatches(prev.chapDigest, g.chap.secret);
    if (missing || changed) {
      await ex.ensureAccount(user, g.chap.secret, changed, signal);
      pass.accounts.add(user);
    }
    if (missing || changed || !target.accounts.includes(user)) {
      await ex.bindAccount(target.tid, user, signal);
      restored.push(`account:${id}:${user}`);
    }
  }
  for (const u of target.accounts.filter((a) => !wantUsers.has(a))) {
    await ex.unbindAccount(target.tid, u, signal);
    pass.unbound.add(u);
    removed.push(`account:${id}:${u}`);
  }
}

/**
 * Brings tgtd in line with the desired exports: re-creates lost targets, LUNs, ACLs and accounts
 * (tgtd keeps nothing across a restart), removes stray ACLs and accounts on our targets (dropping
 * sessions that came in through a stray ACL), and deletes targets under our IQN prefix that no
 * desired volume owns and the control plane does not know (`options.knownVolumes`: another
 * backend on the same tgtd, or a volume still being created). Targets outside the prefix are
 * never touched. A volume that cannot be restored does not stop the others; the pass then throws
 * DRIVER_FAILED listing them.
 */
export async function reconcileTgtExports(ctx: ReconcileContext, desired: readonly DesiredExport[], signal: AbortSignal, options: ReconcileOptions = {}): Promise<ReconcileReport> {
  const ex = ctx.exports;
  const restored: string[] = [];
  const removed: string[] = [];
  const failures: string[] = [];
  const pass: PassState = { accounts: new Set(await ex.client.showAccounts(signal)), unbound: new Set(), wantedAccounts: new Set() };
  for (const d of desired) {
    try {
      await reconcileOne(ctx, d, pass, signal, restored, removed);
    } catch (err) {
      failures.push(`${d.volumeId}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  try {
    await removeOrphans(ctx, desired, pass, signal, options, removed);
  } catch (err) {
    // What this pass already restored stays on record even when the orphan sweep fails.
    failures.push(`orphans: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (failures.length > 0) {
    throw new StowageError('DRIVER_FAILED', `tgt driver: reconcile could not restore ${String(failures.length)} export(s): ${failures.join('; ')}`, { restored, removed, failed: failures.length });
  }
  return { restored, removed };
}

/** Removes targets under our prefix that no desired or known volume owns, then accounts nothing uses. */
async function removeOrphans(ctx: ReconcileContext, desired: readonly DesiredExport[], pass: PassState, signal: AbortSignal, options: ReconcileOptions, removed: string[]): Promise<void> {
  const ex = ctx.exports;
  const wanted = new Set(desired.map((d) => d.volumeId));
  const candidates = ex.ownTargets(await ex.client.showTargets(signal)).filter((t) => !wanted.has(ex.volumeIdOf(t.iqn) ?? ''));
  const ids = candidates.flatMap((t) => ex.volumeIdOf(t.iqn) ?? []);
  const known = ids.length > 0 && options.knownVolumes ? await options.knownVolumes(ids) : new Set<string>();
  for (const t of candidates) {
    const id = ex.volumeIdOf(t.iqn);
    if (id === undefined || known.has(id)) continue;
    await ex.deleteTarget(t.tid, signal);
    for (const u of t.accounts) pass.unbound.add(u);
    await ctx.ledger.write(id, []);
    removed.push(`target:${id}`);
  }
  // Accounts we unbound that no target (ours or not) still uses and no desired grant wants.
  const stillBound = new Set((await ex.client.showTargets(signal)).flatMap((t) => t.accounts));
  for (const u of pass.unbound) {
    if (!stillBound.has(u) && !pass.wantedAccounts.has(u)) await ex.deleteAccount(u, signal);
  }
}
