import { stat } from 'node:fs/promises';
import path from 'node:path';
import { StowageError } from '../../core/errors.js';
import type { AccessPort, ClonePort, DataPort, ExportDrift, ExportPort, ExpectedExport, RevertPort, SnapshotPort } from '../sdk/ports.js';
import { DriverRegistry } from '../sdk/registry.js';
import type {
  BackendReport, BlockDriver, Capability, ConnectionInfo, CreateVolume, DriverDeps, DriverFactory, DriverGrant,
  DriverHandle, DriverVolume, GrantRequest, HostIdentity, ReconcileOptions, ReconcileReport,
} from '../sdk/types.js';
import { btrfsDriverFactory } from '../btrfs/btrfs-driver.js';
import { dirDriverFactory } from '../dir/dir-driver.js';
import { GrantLedger, TGT_VOLUME_ID_RE, type LedgerGrant } from './grant-ledger.js';
import { aclEntriesOf, assertChap, assertHost, ledgerEntry, lunReadonlyFor } from './tgt-access.js';
import { parseTgtUri, type TgtConfig } from './tgt-config.js';
import { reconcileTgtExports } from './tgt-reconcile.js';
import { tgtDrift } from './tgt-drift.js';
import { TgtExports, VOLUME_LUN } from './tgt-exports.js';
import { TgtadmClient } from './tgtadm-client.js';
import type { TgtTarget } from './tgtadm-show.js';

/** What tgt itself adds on top of the backing store's capabilities. */
const TGT_CAPABILITIES: readonly Capability[] = ['thin', 'resize', 'access.address', 'access.initiator', 'access.chap', 'multiattach', 'format.raw'];

/** Backing-store capabilities that stay true when the volume is exported over tgt. */
const PASSTHROUGH_CAPABILITIES: readonly Capability[] = ['snapshot', 'snapshot.offload', 'clone', 'clone.offload', 'revert', 'quota'];

/** The tgt driver's volume handle: the volume id plus the backing store's own handle. */
interface TgtVolumeHandle {
  readonly volumeId: string;
  readonly iqn: string;
  readonly backing: DriverHandle;
}

function parseVolumeHandle(handle: DriverHandle): TgtVolumeHandle {
  const { volumeId, iqn, backing } = handle;
  if (typeof volumeId !== 'string' || !TGT_VOLUME_ID_RE.test(volumeId) || typeof iqn !== 'string' || typeof backing !== 'object' || backing === null) {
    throw new StowageError('VALIDATION_FAILED', 'tgt driver: not a tgt volume handle (need volumeId, iqn, backing)', {});
  }
  return { volumeId, iqn, backing: backing as DriverHandle };
}

function parseSnapshotHandle(handle: DriverHandle): DriverHandle {
  const { snapshotId, backing } = handle;
  if (typeof snapshotId !== 'string' || typeof backing !== 'object' || backing === null) {
    throw new StowageError('VALIDATION_FAILED', 'tgt driver: not a tgt snapshot handle (need snapshotId, backing)', {});
  }
  return backing as DriverHandle;
}

async function fileSizeBytes(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Waits for every promise (none is left running behind an error) and throws the first error. */
async function allOrThrow<T>(promises: readonly Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/** allOrThrow for two promises of different types. */
async function all2<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [ra, rb] = await Promise.allSettled([a, b]);
  if (ra.status === 'rejected') throw ra.reason;
  if (rb.status === 'rejected') throw rb.reason;
  return [ra.value, rb.value];
}

/** A serial queue: tgtadm read-modify-write sequences (tid allocation, flags) must not interleave. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

/**
 * iSCSI volumes on a userspace tgtd: one target per volume (`<iqnPrefix>:<volume-id>`, LUN 1)
 * whose LUN file lives on a backing dir/btrfs store. Access is address (or name) ACL plus CHAP;
 * revoking drops live sessions because tgt checks ACLs only at login.
 */
export class TgtDriver implements BlockDriver {
  readonly scheme = 'tgt';
  readonly kind = 'block' as const;
  readonly capabilities: ReadonlySet<Capability>;
  /** The targets, LUNs, ACLs and accounts this driver keeps on tgtd. */
  readonly targets: TgtExports;
  readonly access: AccessPort = {
    grant: (handle, grant, signal) => this.grantAccess(handle, grant, signal),
    revoke: (handle, host, signal) => this.revokeAccess(handle, host, signal),
    list: (signal) => this.listGrants(signal),
  };
  /** Snapshots, clones and revert are the backing store's, when it has them. */
  readonly snapshots?: SnapshotPort;
  readonly clones?: ClonePort;
  readonly revert?: RevertPort;
  /** The LUN file is the backing store's volume: its path, and its bytes as streams (the backing's own streams, on the backing's handle). */
  readonly data: DataPort = {
    locate: (handle) => ({ path: this.backingPath(parseVolumeHandle(handle).backing), format: 'raw' }),
    openRead: (handle, signal) => this.backingData().openRead(parseVolumeHandle(handle).backing, signal),
    writeFrom: (handle, data, signal, progress) => this.backingData().writeFrom(parseVolumeHandle(handle).backing, data, signal, progress),
  };
  readonly exports: ExportPort = {
    reconcile: (desired, signal, options) => this.reconcileExports(desired, signal, options),
    drift: (expected, signal) => this.exportDrift(expected, signal),
  };
  private readonly ledger: GrantLedger;
  private readonly lock = new Mutex();

  constructor(readonly config: TgtConfig, readonly backing: BlockDriver, deps: DriverDeps) {
    this.targets = new TgtExports(new TgtadmClient(deps.runner, config.controlPort), config.iqnPrefix);
    this.ledger = new GrantLedger(path.join(deps.dataDir, 'tgt-grants'));
    this.capabilities = new Set([...TGT_CAPABILITIES, ...PASSTHROUGH_CAPABILITIES.filter((c) => backing.capabilities.has(c))]);
    const [snapshots, clones, revert] = [backing.snapshots, backing.clones, backing.revert];
    if (snapshots) this.snapshots = { create: (h, id, signal) => this.createSnapshot(snapshots, h, id, signal), delete: (h, signal) => snapshots.delete(parseSnapshotHandle(h), signal) };
    if (clones) this.clones = { clone: (source, req, signal) => this.cloneVolume(clones, source, req, signal) };
    if (revert) this.revert = { revert: (h, snap, signal) => this.revertVolume(revert, h, snap, signal) };
  }

  /** The LUN files live in the backing store's directory. */
  get localDir(): string | undefined {
    return this.backing.localDir;
  }

  private backingData(): DataPort & Required<Pick<DataPort, 'openRead' | 'writeFrom'>> {
    const data = this.backing.data;
    if (!data?.openRead || !data.writeFrom) throw new StowageError('CAPABILITY_MISSING', `tgt driver: backing store ${this.config.backingUri} cannot stream its volumes`, {});
    return data as DataPort & Required<Pick<DataPort, 'openRead' | 'writeFrom'>>;
  }

  private backingPath(handle: DriverHandle): string {
    if (!this.backing.data) throw new StowageError('CAPABILITY_MISSING', `tgt driver: backing store ${this.config.backingUri} exposes no file path`, {});
    const { path: p, format } = this.backing.data.locate(handle);
    if (format !== 'raw') throw new StowageError('CAPABILITY_MISSING', `tgt driver: backing volume is ${format}; tgt serves raw files only`, { format });
    return p;
  }

  private wrap(volumeId: string, backing: DriverHandle): DriverHandle {
    return { volumeId, iqn: this.targets.iqnFor(volumeId), backing };
  }

  async probe(signal: AbortSignal): Promise<BackendReport> {
    let portals: string[];
    try {
      portals = await this.targets.client.showPortals(signal);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new StowageError('BACKEND_UNAVAILABLE', `tgtd on control port ${String(this.config.controlPort)} is not reachable: ${reason}`, { controlPort: this.config.controlPort }, { cause: err });
    }
    if (!portals.includes(this.config.portal) && !portals.some((p) => p.startsWith('0.0.0.0:') || p.startsWith('[::]:'))) {
      throw new StowageError('BACKEND_UNAVAILABLE', `tgtd on control port ${String(this.config.controlPort)} does not listen on portal ${this.config.portal} (it listens on ${portals.join(', ') || 'nothing'})`, { portal: this.config.portal });
    }
    const report = await this.backing.probe(signal);
    const caps = new Set<Capability>(TGT_CAPABILITIES);
    for (const c of report.capabilities) if (PASSTHROUGH_CAPABILITIES.includes(c)) caps.add(c);
    return {
      totalBytes: report.totalBytes,
      freeBytes: report.freeBytes,
      usedBytes: report.usedBytes,
      capabilities: [...caps],
      info: { ...report.info, portal: this.config.portal, controlPort: String(this.config.controlPort), iqnPrefix: this.config.iqnPrefix, backing: this.config.backingUri },
    };
  }

  async createVolume(req: CreateVolume, signal: AbortSignal): Promise<DriverHandle> {
    if (!TGT_VOLUME_ID_RE.test(req.id)) throw new StowageError('VALIDATION_FAILED', `tgt driver: ${JSON.stringify(req.id)} is not a volume id`, { id: req.id });
    if (req.format !== undefined && req.format !== 'raw') throw new StowageError('CAPABILITY_MISSING', `tgt driver serves raw LUNs only, not ${req.format}`, { format: req.format });
    // The target needs no file: it is made (on the tid hint) while the backing store makes the
    // file. A create killed in between leaves a target without a LUN, which the create run again
    // finishes and a delete removes; a backing store that refuses removes the target made for it.
    const made = this.lock.run(() => this.targets.newTargetOnHint(req.id, signal));
    const [backing, grants, pre] = await Promise.allSettled([this.backing.createVolume({ ...req, format: 'raw' }, signal), this.ledger.read(req.id), made]);
    if (backing.status === 'rejected' || grants.status === 'rejected') {
      if (pre.status === 'fulfilled' && pre.value) {
        const tid = pre.value.tid;
        await this.lock.run(() => this.targets.deleteTarget(tid, signal)).catch(() => undefined);
      }
      throw backing.status === 'rejected' ? backing.reason : (grants as PromiseRejectedResult).reason;
    }
    const file = this.backingPath(backing.value);
    const target = pre.status === 'fulfilled' ? pre.value : undefined;
    await this.lock.run(() => this.targets.ensureTarget(req.id, file, lunReadonlyFor(grants.value), signal, target ?? false));
    return this.wrap(req.id, backing.value);
  }

  async deleteVolume(handle: DriverHandle, signal: AbortSignal): Promise<void> {
    const h = parseVolumeHandle(handle);
    await this.lock.run(async () => {
      const target = await this.targets.find(h.volumeId, signal);
      if (target) await this.targets.deleteTarget(target.tid, signal);
      await this.deleteAccountsOf(h.volumeId, await this.ledger.read(h.volumeId), signal);
      await this.ledger.write(h.volumeId, []);
    });
    await this.backing.deleteVolume(h.backing, signal);
  }

  /** Deletes the CHAP accounts of `grants` unless another volume's grant still uses the same user. */
  private async deleteAccountsOf(volumeId: string, grants: readonly LedgerGrant[], signal: AbortSignal): Promise<void> {
    const users = new Set(grants.flatMap((g) => (g.chapUser === undefined ? [] : [g.chapUser])));
    if (users.size === 0) return;
    for (const other of await this.ledger.volumeIds()) {
      if (other === volumeId) continue;
      for (const g of await this.ledger.read(other)) if (g.chapUser !== undefined) users.delete(g.chapUser);
    }
    for (const u of users) await this.targets.deleteAccount(u, signal);
  }

  async resizeVolume(handle: DriverHandle, sizeBytes: number, signal: AbortSignal): Promise<void> {
    const h = parseVolumeHandle(handle);
    const file = this.backingPath(h.backing);
    const before = await fileSizeBytes(file);
    await this.backing.resizeVolume(h.backing, sizeBytes, signal);
    const after = await fileSizeBytes(file);
    await this.lock.run(async () => {
      const lun = (await this.targets.find(h.volumeId, signal))?.luns.find((l) => l.lun === VOLUME_LUN);
      // tgtd reads the size only when the LUN is added (it prints whole decimal MB). Re-adding
      // interrupts in-flight commands for a moment, so only do it when the size really changed
      // or tgtd still shows an old size (a retry after a crash between the two steps).
      const stale = lun !== undefined && after !== undefined && lun.sizeMb !== Math.floor(after / 1_000_000);
      if (lun && (before !== after || stale)) await this.targets.reopenLun(h.volumeId, file, signal);
    });
  }

  async listVolumes(signal: AbortSignal): Promise<DriverVolume[]> {
    const vols = await this.backing.listVolumes(signal);
    return vols.map((v) => ({ ...v, handle: this.wrap(v.id, v.handle) }));
  }

  private async grantAccess(handle: DriverHandle, grant: GrantRequest, signal: AbortSignal): Promise<ConnectionInfo> {
    const h = parseVolumeHandle(handle);
    assertHost(grant.host);
    assertChap(grant);
    const file = this.backingPath(h.backing);
    const entry = await this.lock.run(async () => {
      const grants = await this.ledger.read(h.volumeId);
      const previous = grants.find((g) => g.host === grant.host.name);
      const next = ledgerEntry(h.volumeId, grant, previous);
      const all = [...grants.filter((g) => g.host !== grant.host.name), next];
      await this.ledger.write(h.volumeId, all);
      const chap = grant.chap && next.chapUser !== undefined ? { user: next.chapUser, secret: grant.chap.secret } : undefined;
      // A new user, or the same one with another secret: an account tgtd already has is re-created.
      const replace = previous?.chapUser !== next.chapUser || previous?.chapDigest !== next.chapDigest;
      // Independent tgtadm calls run side by side (tgtd answers one at a time, but the spawns
      // overlap): the account is made while the target is read, then the ACL and account binds.
      // Re-creating an account that exists re-binds it to the targets it reads, so that stays in order.
      const [{ target }, made] = await all2(
        this.targets.ensureTarget(h.volumeId, file, lunReadonlyFor(all), signal),
        chap ? this.targets.newAccount(chap.user, chap.secret, signal) : Promise.resolve(true),
      );
      if (previous) await this.unbindStale(target, previous, next, signal);
      if (chap && !made && replace) await this.targets.replaceAccount(chap.user, chap.secret, signal);
      await allOrThrow([
        ...aclEntriesOf(grant.host).map((acl) => this.targets.bindAcl(target.tid, acl.kind, acl.value, signal)),
        ...(chap ? [this.targets.bindAccount(target.tid, chap.user, signal)] : []),
      ]);
      return next;
    });
    return {
      protocol: 'iscsi',
      portal: this.config.portal,
      iqn: this.targets.iqnFor(h.volumeId),
      lun: VOLUME_LUN,
      ...(grant.chap && entry.chapUser !== undefined ? { chapUser: entry.chapUser, chapSecret: grant.chap.secret } : {}),
      mode: grant.mode,
    };
  }

  /** On a re-grant with different addresses or CHAP user, removes what the old grant had bound. */
  private async unbindStale(target: TgtTarget, previous: LedgerGrant, entry: LedgerGrant, signal: AbortSignal): Promise<void> {
    const keep = new Set(aclEntriesOf(entry).map((a) => a.value));
    for (const acl of aclEntriesOf(previous)) if (!keep.has(acl.value)) await this.targets.unbindAcl(target.tid, acl.kind, acl.value, signal);
    if (previous.chapUser !== undefined && previous.chapUser !== entry.chapUser) await this.targets.unbindAccount(target.tid, previous.chapUser, signal);
  }

  private async revokeAccess(handle: DriverHandle, host: HostIdentity, signal: AbortSignal): Promise<void> {
    const h = parseVolumeHandle(handle);
    await this.lock.run(async () => {
      const grants = await this.ledger.read(h.volumeId);
      const previous = grants.find((g) => g.host === host.name);
      const rest = grants.filter((g) => g.host !== host.name);
      const addresses = new Set([...host.addresses, ...(previous?.addresses ?? [])]);
      const names = new Set([host.initiatorName, previous?.initiatorName].filter((n): n is string => n !== undefined));
      const target = await this.targets.find(h.volumeId, signal);
      if (target) {
        for (const a of addresses) await this.targets.unbindAcl(target.tid, 'address', a, signal);
        for (const n of names) await this.targets.unbindAcl(target.tid, 'initiator', n, signal);
        if (previous?.chapUser !== undefined && !rest.some((g) => g.chapUser === previous.chapUser)) {
          await this.targets.unbindAccount(target.tid, previous.chapUser, signal);
        }
        // ACLs are only checked at login: fence the host by dropping its open sessions. Sessions
        // are matched by address; by initiator name only for a host without addresses, because
        // names are client-chosen and may be shared (QEMU's default name, for one).
        const byName = addresses.size === 0;
        await this.targets.dropSessions(target, (s) => (byName && names.has(s.initiator)) || s.connections.some((c) => addresses.has(c.address)), signal);
        await this.targets.setReadonly(h.volumeId, lunReadonlyFor(rest), signal);
      }
      // The account goes before the ledger forgets the grant: killed in between, the retry still
      // finds the grant in the ledger and deletes again (absent is fine). The other order left an
      // account that no ledger entry named, so no retry would ever delete it.
      if (previous) await this.deleteAccountsOf(h.volumeId, [previous].filter((g) => !rest.some((r) => r.chapUser === g.chapUser)), signal);
      await this.ledger.write(h.volumeId, rest);
    });
  }

  private async listGrants(signal: AbortSignal): Promise<DriverGrant[]> {
    const out: DriverGrant[] = [];
    for (const t of this.targets.ownTargets(await this.targets.client.showTargets(signal))) {
      const volumeId = this.targets.volumeIdOf(t.iqn);
      if (volumeId === undefined) continue;
      const ledger = await this.ledger.read(volumeId);
      for (const initiator of [...t.aclAddresses, ...t.aclInitiators]) {
        const g = ledger.find((l) => l.addresses.includes(initiator) || l.initiatorName === initiator);
        const chapUser = g?.chapUser !== undefined && t.accounts.includes(g.chapUser) ? g.chapUser : undefined;
        out.push({ volumeId, initiator, ...(chapUser !== undefined ? { chapUser } : {}) });
      }
    }
    return out;
  }

  private async createSnapshot(port: SnapshotPort, handle: DriverHandle, snapshotId: string, signal: AbortSignal): Promise<DriverHandle> {
    const h = parseVolumeHandle(handle);
    const backing = await port.create(h.backing, snapshotId, signal);
    // Surface how the backing store made it (btrfs-snapshot, reflink, ...): the core records it.
    return { snapshotId, backing, ...(typeof backing.method === 'string' ? { method: backing.method } : {}) };
  }

  private async cloneVolume(port: ClonePort, source: DriverHandle, req: CreateVolume, signal: AbortSignal): Promise<DriverHandle> {
    if (!TGT_VOLUME_ID_RE.test(req.id)) throw new StowageError('VALIDATION_FAILED', `tgt driver: ${JSON.stringify(req.id)} is not a volume id`, { id: req.id });
    const inner = typeof source.snapshotId === 'string' ? parseSnapshotHandle(source) : parseVolumeHandle(source).backing;
    const backing = await port.clone(inner, { ...req, format: 'raw' }, signal);
    const file = this.backingPath(backing);
    await this.lock.run(() => this.targets.ensureTarget(req.id, file, false, signal, true));
    return this.wrap(req.id, backing);
  }

  private async revertVolume(port: RevertPort, handle: DriverHandle, snapshotHandle: DriverHandle, signal: AbortSignal): Promise<void> {
    const h = parseVolumeHandle(handle);
    await port.revert(h.backing, parseSnapshotHandle(snapshotHandle), signal);
    // The backing store swapped the file under tgtd: re-add the LUN so it serves the new data.
    const file = this.backingPath(h.backing);
    await this.lock.run(() => this.targets.reopenLun(h.volumeId, file, signal));
  }

  private async reconcileExports(desired: readonly { readonly handle: DriverHandle; readonly grants: readonly GrantRequest[] }[], signal: AbortSignal, options: ReconcileOptions = {}): Promise<ReconcileReport> {
    const parsed = desired.map((d) => {
      const h = parseVolumeHandle(d.handle);
      return { volumeId: h.volumeId, backing: h.backing, grants: d.grants };
    });
    const ctx = { exports: this.targets, ledger: this.ledger, fileOf: (b: DriverHandle) => this.backingPath(b) };
    return this.lock.run(() => reconcileTgtExports(ctx, parsed, signal, options));
  }

  /** One `show target`, read under the lock so a grant or resize of ours is never seen half done. */
  private async exportDrift(expected: readonly ExpectedExport[], signal: AbortSignal): Promise<ExportDrift> {
    const wanted = expected.map((e) => ({ volumeId: parseVolumeHandle(e.handle).volumeId, hosts: e.hosts }));
    const targets = await this.lock.run(() => this.targets.client.showTargets(signal));
    return { missing: tgtDrift((id) => this.targets.iqnFor(id), targets, wanted) };
  }
}

/** Backing stores a tgt backend can keep its LUN files on. */
const BACKING_FACTORIES: readonly DriverFactory[] = [dirDriverFactory, btrfsDriverFactory];

/** Builds a tgt driver for a URI over the given backing-store factories; throws INVALID_DRIVER_URI. */
export function createTgtDriver(uri: URL, options: Readonly<Record<string, string>>, deps: DriverDeps, backingFactories: readonly DriverFactory[] = BACKING_FACTORIES): TgtDriver {
  const config = parseTgtUri(uri, options);
  const backing = new DriverRegistry(backingFactories).create(config.backingUri, config.backingOptions, deps);
  if (!backing.data) throw new StowageError('INVALID_DRIVER_URI', `tgt driver: backing ${config.backingUri} has no file path for tgtd to serve`, {});
  return new TgtDriver(config, backing, deps);
}

/** Query values with only what a query must escape %-encoded, so a nested `backing=dir:///…` stays readable. */
function encodeQueryPart(text: string): string {
  return encodeURIComponent(text).replace(/%3A/gi, ':').replace(/%2F/gi, '/');
}

/**
 * The tgt URI with its `backing=` replaced by the backing store's canonical URI (see
 * DriverFactory.normalize); the query value is decoded once, and the backing URI's own path once more.
 */
export function normalizeTgtUri(typed: string, backingFactories: readonly DriverFactory[] = BACKING_FACTORIES): string {
  let url: URL;
  try {
    url = new URL(typed);
  } catch {
    return typed; // parseTgtUri says what is wrong
  }
  const backing = url.searchParams.get('backing');
  if (backing === null || backing === '') return typed;
  let canonical: string;
  try {
    canonical = new DriverRegistry(backingFactories).canonicalUri(backing);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new StowageError('INVALID_DRIVER_URI', `tgt driver URI ${JSON.stringify(typed)} has a bad backing=${JSON.stringify(backing)}: ${why}`, { uri: typed, backing }, { cause: err });
  }
  const query = [...url.searchParams].map(([k, v]) => `${encodeQueryPart(k)}=${encodeQueryPart(k === 'backing' ? canonical : v)}`).join('&');
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}?${query}`;
}

/** Factory for `tgt://<portal>?backing=<dir|btrfs uri>&control=<n>[&iqnPrefix=…]` backends. */
export const tgtDriverFactory: DriverFactory = {
  scheme: 'tgt',
  kind: 'block',
  description: 'iSCSI LUNs on a userspace tgtd, files on a dir or btrfs backing store: tgt://10.0.0.1:3260?backing=btrfs:///srv/pool&control=7',
  create(uri, options, deps) {
    return createTgtDriver(uri, options, deps);
  },
  normalize: (typed) => normalizeTgtUri(typed),
};
