import { StowageError } from '../../core/errors.js';
import { TGT_VOLUME_ID_RE } from './grant-ledger.js';
import type { TgtadmClient } from './tgtadm-client.js';
import type { TgtSession, TgtTarget } from './tgtadm-show.js';

/** The LUN every volume is exported as (LUN 0 is tgt's controller). */
export const VOLUME_LUN = 1;

/** How often to retry a target creation that lost a tid race with another tgtadm user. */
const TID_RETRIES = 8;

/**
 * Target-level operations on one tgtd for volumes under one IQN prefix: targets with LUN 1,
 * address/name ACLs, CHAP accounts and sessions. Callers serialize calls (tid allocation reads
 * then writes). Every method is idempotent.
 */
export class TgtExports {
  /**
   * The tid a new target most likely gets (one above the highest tid last seen or made here), so a
   * create need not list every target first. Only a hint: a taken tid (or IQN) answers `exists`,
   * and the create then falls back to reading the targets, so a stale hint costs a call, never a
   * wrong target.
   */
  private nextTid: number | undefined;

  constructor(readonly client: TgtadmClient, readonly iqnPrefix: string) {}

  /** The stable IQN of a volume's target. */
  iqnFor(volumeId: string): string {
    return `${this.iqnPrefix}:${volumeId}`;
  }

  /** The volume id a target IQN belongs to, or undefined when it is not one of ours. */
  volumeIdOf(iqn: string): string | undefined {
    const prefix = `${this.iqnPrefix}:`;
    if (!iqn.startsWith(prefix)) return undefined;
    const id = iqn.slice(prefix.length);
    return TGT_VOLUME_ID_RE.test(id) ? id : undefined;
  }

  /** Our targets only (other targets on the same tgtd are never touched). */
  ownTargets(targets: readonly TgtTarget[]): TgtTarget[] {
    return targets.filter((t) => this.volumeIdOf(t.iqn) !== undefined);
  }

  /** The current state of a volume's target, or undefined. */
  async find(volumeId: string, signal: AbortSignal): Promise<TgtTarget | undefined> {
    const iqn = this.iqnFor(volumeId);
    return (await this.client.showTargets(signal)).find((t) => t.iqn === iqn);
  }

  /**
   * Makes sure the volume's target exists with LUN 1 on `backingPath`, thin provisioning on and
   * the readonly flag as given. Returns the target as read before its LUN was (re)configured (its
   * tid, ACLs, accounts and sessions are current) and what had to be (re)created.
   *
   * `likelyNew` (a volume create) first tries `new target` on the hinted tid without reading the
   * targets: tgtd refuses a taken tid and an IQN it already has alike (`exists`), so a target that
   * does exist (a create run again after a crash) or a stale hint falls back to the read below.
   * A target newTargetOnHint just made may be passed instead.
   */
  async ensureTarget(volumeId: string, backingPath: string, readonly: boolean, signal: AbortSignal, likelyNew: boolean | TgtTarget = false): Promise<{ target: TgtTarget; changes: string[] }> {
    const iqn = this.iqnFor(volumeId);
    const changes: string[] = [];
    let target: TgtTarget | undefined = typeof likelyNew === 'object' ? likelyNew : undefined;
    let targets: TgtTarget[] = [];
    if (target) changes.push(`target:${volumeId}`);
    else if (likelyNew === true) target = await this.newTargetOnHint(volumeId, signal, changes);
    if (!target) {
      targets = await this.client.showTargets(signal);
      this.nextTid = Math.max(0, ...targets.map((t) => t.tid)) + 1;
      target = targets.find((t) => t.iqn === iqn);
    }
    for (let attempt = 0; !target; attempt++) {
      if (attempt >= TID_RETRIES) throw new StowageError('DRIVER_FAILED', `tgt driver: could not allocate a target id for ${iqn}`, { iqn });
      const tid = Math.max(0, ...targets.map((t) => t.tid)) + 1 + attempt;
      // `exists` means the tid (or our IQN) was taken concurrently: re-read and retry.
      target = await this.newTarget(tid, volumeId, changes, signal);
      if (target) break;
      targets = await this.client.showTargets(signal);
      target = targets.find((t) => t.iqn === iqn);
    }
    const lun = target.luns.find((l) => l.lun === VOLUME_LUN);
    if (lun?.backingPath !== backingPath) {
      if (lun) await this.client.run(['--op', 'delete', '--mode', 'logicalunit', '--tid', String(target.tid), '--lun', String(VOLUME_LUN)], { signal, tolerate: ['missing'] });
      await this.addLun(target.tid, backingPath, signal);
      changes.push(`lun:${volumeId}`);
    }
    await this.setLunFlags(target.tid, lun?.backingPath === backingPath ? lun : undefined, readonly, signal);
    return { target, changes };
  }

  /**
   * `new target` on the hinted tid (none without a hint): the new, empty target, or undefined when
   * tgtd already has the tid or the IQN (ensureTarget then reads the targets). Pass what it returns
   * to ensureTarget as `likelyNew`, under the same lock.
   */
  async newTargetOnHint(volumeId: string, signal: AbortSignal, changes: string[] = []): Promise<TgtTarget | undefined> {
    return this.nextTid === undefined ? undefined : this.newTarget(this.nextTid, volumeId, changes, signal);
  }

  /** `new target` on `tid`; the new (empty) target, or undefined when tgtd said the tid or IQN exists. */
  private async newTarget(tid: number, volumeId: string, changes: string[], signal: AbortSignal): Promise<TgtTarget | undefined> {
    const iqn = this.iqnFor(volumeId);
    const made = await this.client.run(['--op', 'new', '--mode', 'target', '--tid', String(tid), '-T', iqn], { signal, tolerate: ['exists'] });
    if (made === undefined) return undefined;
    this.nextTid = Math.max(this.nextTid ?? 0, tid + 1);
    changes.push(`target:${volumeId}`);
    // Just made under our lock: it has no LUN, ACL, account or session yet, so no re-read (one tgtadm less per create).
    return { tid, iqn, state: 'ready', sessions: [], luns: [], accounts: [], aclAddresses: [], aclInitiators: [] };
  }

  private async addLun(tid: number, backingPath: string, signal: AbortSignal): Promise<void> {
    await this.client.run(['--op', 'new', '--mode', 'logicalunit', '--tid', String(tid), '--lun', String(VOLUME_LUN), '-b', backingPath], { signal, tolerate: ['exists'] });
  }

  private async setLunFlags(tid: number, current: { thin: boolean; readonly: boolean } | undefined, readonly: boolean, signal: AbortSignal): Promise<void> {
    const base = ['--op', 'update', '--mode', 'logicalunit', '--tid', String(tid), '--lun', String(VOLUME_LUN), '--params'];
    if (current?.thin !== true) await this.client.run([...base, 'thin_provisioning=1'], { signal });
    if ((current?.readonly ?? false) !== readonly) await this.client.run([...base, `readonly=${readonly ? '1' : '0'}`], { signal });
  }

  /** Sets LUN 1's readonly flag (tgt has no per-initiator read-only). */
  async setReadonly(volumeId: string, readonly: boolean, signal: AbortSignal): Promise<void> {
    const target = await this.find(volumeId, signal);
    const lun = target?.luns.find((l) => l.lun === VOLUME_LUN);
    if (!target || !lun) return;
    await this.setLunFlags(target.tid, lun, readonly, signal);
  }

  /**
   * Deletes and re-adds LUN 1 so tgtd re-reads the backing file (new size after a resize, new
   * inode after a revert). Open sessions stay; initiators see the change on their next command.
   */
  async reopenLun(volumeId: string, backingPath: string, signal: AbortSignal): Promise<void> {
    const target = await this.find(volumeId, signal);
    if (!target) return;
    const lun = target.luns.find((l) => l.lun === VOLUME_LUN);
    if (lun) await this.client.run(['--op', 'delete', '--mode', 'logicalunit', '--tid', String(target.tid), '--lun', String(VOLUME_LUN)], { signal, tolerate: ['missing'] });
    await this.addLun(target.tid, backingPath, signal);
    await this.setLunFlags(target.tid, undefined, lun?.readonly ?? false, signal);
  }

  /** Binds an address (`-I`) or initiator-name (`-Q`) ACL entry; binding twice is fine. */
  async bindAcl(tid: number, kind: 'address' | 'initiator', value: string, signal: AbortSignal): Promise<void> {
    await this.client.run(['--op', 'bind', '--mode', 'target', '--tid', String(tid), kind === 'address' ? '-I' : '-Q', value], { signal, tolerate: ['exists'] });
  }

  /** Removes an ACL entry; an absent one is fine. */
  async unbindAcl(tid: number, kind: 'address' | 'initiator', value: string, signal: AbortSignal): Promise<void> {
    await this.client.run(['--op', 'unbind', '--mode', 'target', '--tid', String(tid), kind === 'address' ? '-I' : '-Q', value], { signal, tolerate: ['missing'] });
  }

  /**
   * Creates the CHAP account, or re-creates it when `replace` (the secret may have changed).
   * Re-creating unbinds it from every target, so it is re-bound to the targets that had it.
   * Returns whether it (re)made the account.
   */
  async ensureAccount(user: string, secret: string, replace: boolean, signal: AbortSignal): Promise<boolean> {
    if (await this.newAccount(user, secret, signal)) return true;
    if (!replace) return false;
    await this.replaceAccount(user, secret, signal);
    return true;
  }

  /**
   * `new account` alone: true when it made it, false when tgtd already had that user (then
   * replaceAccount sets the secret). No list of accounts first: tgtd's `exists` answers that.
   */
  async newAccount(user: string, secret: string, signal: AbortSignal): Promise<boolean> {
    return (await this.client.run(['--op', 'new', '--mode', 'account', '--user', user, '--password', secret], { signal, secrets: [secret], tolerate: ['exists'] })) !== undefined;
  }

  /** Deletes and re-creates an existing account with `secret`, re-bound to the targets that had it. */
  async replaceAccount(user: string, secret: string, signal: AbortSignal): Promise<void> {
    const rebind = (await this.client.showTargets(signal)).filter((t) => t.accounts.includes(user)).map((t) => t.tid);
    await this.client.run(['--op', 'delete', '--mode', 'account', '--user', user], { signal, tolerate: ['missing'] });
    await this.newAccount(user, secret, signal);
    for (const tid of rebind) await this.bindAccount(tid, user, signal);
  }

  /** Binds an incoming CHAP account to a target; already bound is fine. */
  async bindAccount(tid: number, user: string, signal: AbortSignal): Promise<void> {
    await this.client.run(['--op', 'bind', '--mode', 'account', '--tid', String(tid), '--user', user], { signal, tolerate: ['exists'] });
  }

  /**
   * Unbinds an account from one target; not bound is fine. tgt 1.0.85 keeps a target's accounts
   * in an array and unbinding one that is not the last leaves a hole: the next `show` (or CHAP
   * login) then makes tgtd segfault. So the accounts bound after it are unbound too, last first,
   * and bound again in their order (bind fills the first free slot).
   */
  async unbindAccount(tid: number, user: string, signal: AbortSignal): Promise<void> {
    const bound = (await this.client.showTargets(signal)).find((t) => t.tid === tid)?.accounts ?? [];
    const at = bound.indexOf(user);
    const after = at < 0 ? [] : bound.slice(at + 1);
    const unbind = (u: string): Promise<string | undefined> =>
      this.client.run(['--op', 'unbind', '--mode', 'account', '--tid', String(tid), '--user', u], { signal, tolerate: ['missing'] });
    for (const u of [...after].reverse()) await unbind(u);
    await unbind(user);
    for (const u of after) await this.bindAccount(tid, u, signal);
  }

  /** Deletes an account (tgtd unbinds it from every target); absent is fine. */
  async deleteAccount(user: string, signal: AbortSignal): Promise<void> {
    await this.client.run(['--op', 'delete', '--mode', 'account', '--user', user], { signal, tolerate: ['missing'] });
  }

  /** Kicks every connection of the sessions `match` selects; returns the session ids dropped. */
  async dropSessions(target: TgtTarget, match: (s: TgtSession) => boolean, signal: AbortSignal): Promise<number[]> {
    const dropped: number[] = [];
    for (const s of target.sessions.filter(match)) {
      for (const c of s.connections) {
        await this.client.run(['--op', 'delete', '--mode', 'conn', '--tid', String(target.tid), '--sid', String(s.sid), '--cid', String(c.cid)], { signal, tolerate: ['missing'] });
      }
      dropped.push(s.sid);
    }
    return dropped;
  }

  /** Force-deletes a target (open sessions are dropped); absent is fine. */
  async deleteTarget(tid: number, signal: AbortSignal): Promise<void> {
    await this.client.run(['--op', 'delete', '--mode', 'target', '--tid', String(tid), '--force'], { signal, tolerate: ['missing'] });
  }
}
