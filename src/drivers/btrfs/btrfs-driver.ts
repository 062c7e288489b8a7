import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, stat } from 'node:fs/promises';
import { StowageError } from '../../core/errors.js';
import { assertValidSize } from '../../core/sizes.js';
import { CommandFailedError, type CommandRunner, type RunOptions } from '../../system/command-runner.js';
import { fileAccessPort } from '../sdk/file-access.js';
import { fileDataPort } from '../sdk/file-streams.js';
import type { AccessPort, ClonePort, DataPort, RevertPort, SnapshotPort } from '../sdk/ports.js';
import type {
  BackendReport, BlockDriver, Capability, CreateVolume, DriverDeps, DriverFactory, DriverHandle, DriverVolume,
} from '../sdk/types.js';
import { parsePathUri } from '../sdk/path-uri.js';
import { parseFilesystemUsage, parseSubvolumeShow, type SubvolumeInfo } from './btrfs-parse.js';
import { assertSubvolumeId, childPath, DISK_FILE, parseBtrfsUri, BTRFS_VOLUME_ID_RE } from './btrfs-paths.js';

/** Options a btrfs backend accepts (`quota=on` holds every volume to its size with a qgroup limit). */
export interface BtrfsDriverOptions {
  readonly dir: string;
  readonly quota: boolean;
}

/**
 * The qgroup limit (max referenced bytes) that holds a volume of `sizeBytes`: twice the size, at
 * least size + 16 MiB. Not exactly the size, because btrfs charges a subvolume for whole extents
 * that are still partly referenced after an overwrite (bookend extents) and for copy-on-write
 * data until the transaction commits: measured on this kernel, overwriting 30 MiB of a 32 MiB
 * image already fails with a limit of 48 MiB. So the limit stops runaway growth and writes far
 * past the size; it is not a byte-exact cap.
 */
export function qgroupLimitBytes(sizeBytes: number): number {
  return Math.max(2 * sizeBytes, sizeBytes + 16 * 1024 * 1024);
}

const BASE_CAPABILITIES: readonly Capability[] = ['thin', 'resize', 'snapshot', 'snapshot.offload', 'clone', 'clone.offload', 'revert', 'format.raw'];

function handleId(handle: DriverHandle, key: 'volumeId' | 'snapshotId'): string {
  const id = handle[key];
  assertSubvolumeId(id, key === 'volumeId' ? 'volume' : 'snapshot');
  return id;
}

/** Creates a new file of `sizeBytes` (sparse) readable by this user only, whatever the umask. */
async function createPrivateFile(file: string, sizeBytes: number): Promise<void> {
  const fh = await open(file, 'wx', 0o600);
  try {
    await fh.truncate(sizeBytes);
  } finally {
    await fh.close();
  }
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

/** Serializes work per key (volume/snapshot id) so concurrent idempotent calls do not race. */
class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => { if (this.tails.get(key) === tail) this.tails.delete(key); });
    return next;
  }
}

/**
 * A btrfs backend: each volume is a subvolume `<dir>/<volume-id>` holding one sparse `disk.raw`;
 * snapshots are read-only subvolume snapshots `<dir>/<snapshot-id>`, clones writable snapshots.
 */
export class BtrfsDriver implements BlockDriver {
  readonly scheme = 'btrfs';
  readonly kind = 'block' as const;
  readonly capabilities: ReadonlySet<Capability>;
  readonly snapshots: SnapshotPort = {
    create: (handle, snapshotId, signal) => this.createSnapshot(handle, snapshotId, signal),
    delete: (snapshotHandle, signal) => this.deleteSnapshot(snapshotHandle, signal),
  };
  readonly clones: ClonePort = { clone: (source, req, signal) => this.cloneVolume(source, req, signal) };
  readonly revert: RevertPort = { revert: (handle, snapshotHandle, signal) => this.revertVolume(handle, snapshotHandle, signal) };
  /** The raw image file qemu-img or tgtd can open directly. */
  readonly data: DataPort = fileDataPort((handle) => ({ path: this.diskPath(handleId(handle, 'volumeId')), format: 'raw' }));
  /** Hosts open `disk.raw` directly: nothing to bind or revoke on the backend. */
  readonly access: AccessPort = fileAccessPort(this.data);
  private quotaEnabled = false;
  private readonly locks = new KeyedLock();

  constructor(private readonly opts: BtrfsDriverOptions, private readonly runner: CommandRunner) {
    this.capabilities = new Set(this.reportedCapabilities());
  }

  private reportedCapabilities(): readonly Capability[] {
    return this.opts.quota ? [...BASE_CAPABILITIES, 'quota'] : BASE_CAPABILITIES;
  }

  get localDir(): string {
    return this.opts.dir;
  }

  private async run(cmd: string, args: readonly string[], signal: AbortSignal, extra: RunOptions = {}): Promise<string> {
    try {
      return (await this.runner.run(cmd, args, { timeoutMs: 60_000, ...extra, signal })).stdout;
    } catch (err) {
      if (err instanceof CommandFailedError) {
        throw new StowageError('DRIVER_FAILED', `btrfs driver: ${err.message}`, { command: err.command, exitCode: err.exitCode }, { cause: err });
      }
      throw err;
    }
  }

  private subvolPath(id: string): string {
    return childPath(this.opts.dir, id);
  }

  private diskPath(id: string): string {
    return childPath(this.subvolPath(id), DISK_FILE);
  }

  /** The subvolume at `id`, undefined when nothing is there; throws if a non-subvolume is in the way. */
  private async showSubvolume(id: string, signal: AbortSignal): Promise<SubvolumeInfo | undefined> {
    const p = this.subvolPath(id);
    try {
      await stat(p);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
    const out = await this.runner.run('btrfs', ['subvolume', 'show', p], { signal, okExitCodes: [0, 1] });
    const info = out.exitCode === 0 ? parseSubvolumeShow(out.stdout) : undefined;
    if (!info) throw new StowageError('DRIVER_FAILED', `btrfs driver: ${p} exists but is not a btrfs subvolume`, { path: p });
    return info;
  }

  private async fileSize(p: string): Promise<{ sizeBytes: number; allocatedBytes: number } | undefined> {
    try {
      const st = await stat(p);
      return { sizeBytes: st.size, allocatedBytes: st.blocks * 512 };
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  private async ensureQuota(signal: AbortSignal): Promise<void> {
    if (!this.opts.quota || this.quotaEnabled) return;
    await this.run('btrfs', ['quota', 'enable', this.opts.dir], signal);
    this.quotaEnabled = true;
  }

  private async setLimit(id: string, sizeBytes: number | 'none', signal: AbortSignal): Promise<void> {
    if (!this.opts.quota) return;
    await this.ensureQuota(signal);
    const limit = sizeBytes === 'none' ? 'none' : String(qgroupLimitBytes(sizeBytes));
    await this.run('btrfs', ['qgroup', 'limit', limit, this.subvolPath(id)], signal);
  }

  /** Writes `disk.raw` of `sizeBytes` through a temp name, so a present disk.raw is always complete. */
  private async writeSparseDisk(id: string, sizeBytes: number, signal: AbortSignal): Promise<void> {
    const tmp = childPath(this.subvolPath(id), `.${DISK_FILE}.tmp-${randomBytes(6).toString('hex')}`);
    await createPrivateFile(tmp, sizeBytes);
    await this.run('mv', ['-T', tmp, this.diskPath(id)], signal);
  }

  /**
   * Makes a writable volume subvolume 0700 and its disk.raw 0600: `btrfs subvolume create` picks its
   * own mode, and volumes made before this rule may be 0755/0644. Snapshots are read-only and keep
   * the mode their volume had when they were taken, so volumes are sealed before every snapshot.
   */
  private async seal(id: string): Promise<void> {
    await chmod(this.subvolPath(id), 0o700);
    if (await this.fileSize(this.diskPath(id))) await chmod(this.diskPath(id), 0o600);
  }

  async probe(signal: AbortSignal): Promise<BackendReport> {
    const fail = (why: string, cause?: unknown): StowageError =>
      new StowageError('BACKEND_UNAVAILABLE', `btrfs backend ${this.opts.dir}: ${why}`, { dir: this.opts.dir }, { cause });
    try {
      await mkdir(this.opts.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw fail(`cannot create the directory (${err instanceof Error ? err.message : String(err)})`, err);
    }
    const fsType = await this.runner.run('stat', ['-f', '-c', '%T', this.opts.dir], { signal, okExitCodes: [0, 1] });
    if (fsType.stdout.trim() !== 'btrfs') throw fail(`is not on btrfs (filesystem type "${fsType.stdout.trim() || fsType.stderr.trim()}")`);
    let usage;
    try {
      usage = parseFilesystemUsage(await this.run('btrfs', ['filesystem', 'usage', '-b', this.opts.dir], signal));
    } catch (err) {
      throw fail(err instanceof Error ? err.message : String(err), err);
    }
    if (!usage) throw fail('could not read `btrfs filesystem usage`');
    await this.ensureQuota(signal);
    return {
      totalBytes: usage.deviceSizeBytes,
      freeBytes: usage.freeBytes,
      usedBytes: usage.usedBytes,
      capabilities: this.reportedCapabilities(),
      info: { filesystem: 'btrfs', dir: this.opts.dir, quota: this.opts.quota ? 'on' : 'off' },
    };
  }

  async createVolume(req: CreateVolume, signal: AbortSignal): Promise<DriverHandle> {
    signal.throwIfAborted();
    return this.locks.run(req.id, async () => {
      assertSubvolumeId(req.id, 'volume');
      assertValidSize(req.sizeBytes);
      if (req.format !== undefined && req.format !== 'raw') {
        throw new StowageError('CAPABILITY_MISSING', `btrfs driver stores raw images only, not ${req.format}`, { format: req.format });
      }
      await mkdir(this.opts.dir, { recursive: true, mode: 0o700 });
      const existing = await this.showSubvolume(req.id, signal);
      if (!existing) await this.run('btrfs', ['subvolume', 'create', this.subvolPath(req.id)], signal);
      await this.seal(req.id);
      const disk = await this.fileSize(this.diskPath(req.id));
      if (disk && disk.sizeBytes !== req.sizeBytes) {
        throw new StowageError('INVALID_STATE', `volume ${req.id} already exists on this btrfs backend with size ${disk.sizeBytes}, not ${req.sizeBytes}`, { id: req.id, sizeBytes: disk.sizeBytes });
      }
      await this.setLimit(req.id, req.sizeBytes, signal);
      if (!disk) await this.writeSparseDisk(req.id, req.sizeBytes, signal);
      return { volumeId: req.id };
    });
  }

  private async deleteSubvolume(id: string, signal: AbortSignal): Promise<void> {
    const info = await this.showSubvolume(id, signal);
    if (!info) return;
    // A subvolume at its qgroup limit cannot even be deleted: lift the limit first.
    if (this.opts.quota) await this.run('btrfs', ['qgroup', 'limit', 'none', this.subvolPath(id)], signal);
    await this.run('btrfs', ['subvolume', 'delete', this.subvolPath(id)], signal);
    if (this.opts.quota) {
      // Stale 0/<id> qgroups are harmless; remove when the kernel lets us.
      await this.runner.run('btrfs', ['qgroup', 'destroy', `0/${String(info.subvolumeId)}`, this.opts.dir], { signal, okExitCodes: [0, 1] });
    }
  }

  async deleteVolume(handle: DriverHandle, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    return this.locks.run(String(handle.volumeId), async () => {
      await this.deleteSubvolume(handleId(handle, 'volumeId'), signal);
    });
  }

  async resizeVolume(handle: DriverHandle, sizeBytes: number, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    return this.locks.run(String(handle.volumeId), async () => {
      const id = handleId(handle, 'volumeId');
      assertValidSize(sizeBytes);
      const disk = await this.fileSize(this.diskPath(id));
      if (!disk) throw new StowageError('VOLUME_NOT_FOUND', `volume ${id} is not on this btrfs backend`, { id });
      if (sizeBytes < disk.sizeBytes) {
        throw new StowageError('SHRINK_NOT_SUPPORTED', `volume ${id} is ${disk.sizeBytes} bytes; shrinking to ${sizeBytes} is not supported`, { id, sizeBytes: disk.sizeBytes });
      }
      if (sizeBytes === disk.sizeBytes) return;
      await this.setLimit(id, sizeBytes, signal);
      await this.run('truncate', ['-s', String(sizeBytes), this.diskPath(id)], signal);
    });
  }

  async listVolumes(signal: AbortSignal): Promise<DriverVolume[]> {
    signal.throwIfAborted();
    let names: string[];
    try {
      names = await readdir(this.opts.dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
    const out: DriverVolume[] = [];
    for (const name of names.filter((n) => BTRFS_VOLUME_ID_RE.test(n)).sort()) {
      const disk = await this.fileSize(this.diskPath(name));
      if (disk) out.push({ id: name, sizeBytes: disk.sizeBytes, allocatedBytes: disk.allocatedBytes, handle: { volumeId: name } });
    }
    return out;
  }

  private async createSnapshot(handle: DriverHandle, snapshotId: string, signal: AbortSignal): Promise<DriverHandle> {
    signal.throwIfAborted();
    return this.locks.run(snapshotId, async () => {
      const volumeId = handleId(handle, 'volumeId');
      assertSubvolumeId(snapshotId, 'snapshot');
      const source = await this.showSubvolume(volumeId, signal);
      if (!source) throw new StowageError('VOLUME_NOT_FOUND', `volume ${volumeId} is not on this btrfs backend`, { id: volumeId });
      const existing = await this.showSubvolume(snapshotId, signal);
      if (existing) {
        if (existing.parentUuid !== source.uuid || !existing.readonly) {
          throw new StowageError('INVALID_STATE', `snapshot ${snapshotId} already exists and is not a read-only snapshot of ${volumeId}`, { snapshotId, volumeId });
        }
      } else {
        await this.seal(volumeId);
        await this.run('btrfs', ['subvolume', 'snapshot', '-r', this.subvolPath(volumeId), this.subvolPath(snapshotId)], signal);
      }
      // `method` is what the core records as the path the snapshot took.
      return { snapshotId, volumeId, method: 'btrfs-snapshot' };
    });
  }

  private async deleteSnapshot(snapshotHandle: DriverHandle, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    return this.locks.run(String(snapshotHandle.snapshotId), async () => {
      await this.deleteSubvolume(handleId(snapshotHandle, 'snapshotId'), signal);
    });
  }

  private sourceId(source: DriverHandle): string {
    return typeof source.snapshotId === 'string' ? handleId(source, 'snapshotId') : handleId(source, 'volumeId');
  }

  private async cloneVolume(source: DriverHandle, req: CreateVolume, signal: AbortSignal): Promise<DriverHandle> {
    signal.throwIfAborted();
    return this.locks.run(req.id, async () => {
      const sourceId = this.sourceId(source);
      assertSubvolumeId(req.id, 'volume');
      assertValidSize(req.sizeBytes);
      const sourceInfo = await this.showSubvolume(sourceId, signal);
      const sourceDisk = await this.fileSize(this.diskPath(sourceId));
      if (!sourceInfo || !sourceDisk) throw new StowageError(sourceId.startsWith('snap-') ? 'SNAPSHOT_NOT_FOUND' : 'VOLUME_NOT_FOUND', `clone source ${sourceId} is not on this btrfs backend`, { id: sourceId });
      if (req.sizeBytes < sourceDisk.sizeBytes) {
        throw new StowageError('SHRINK_NOT_SUPPORTED', `a clone of ${sourceId} must be at least ${sourceDisk.sizeBytes} bytes`, { id: sourceId, sizeBytes: sourceDisk.sizeBytes });
      }
      const existing = await this.showSubvolume(req.id, signal);
      if (existing && existing.parentUuid !== sourceInfo.uuid) {
        throw new StowageError('INVALID_STATE', `volume ${req.id} already exists and is not a clone of ${sourceId}`, { id: req.id, sourceId });
      }
      // A writable snapshot: constant time, shares every extent with the source.
      if (!existing) await this.run('btrfs', ['subvolume', 'snapshot', this.subvolPath(sourceId), this.subvolPath(req.id)], signal);
      const disk = await this.fileSize(this.diskPath(req.id));
      if (!disk) throw new StowageError('DRIVER_FAILED', `clone ${req.id} has no ${DISK_FILE}`, { id: req.id });
      await this.seal(req.id);
      if (disk.sizeBytes > req.sizeBytes) {
        throw new StowageError('INVALID_STATE', `volume ${req.id} already exists with size ${disk.sizeBytes}, not ${req.sizeBytes}`, { id: req.id });
      }
      await this.setLimit(req.id, req.sizeBytes, signal);
      if (disk.sizeBytes < req.sizeBytes) await this.run('truncate', ['-s', String(req.sizeBytes), this.diskPath(req.id)], signal);
      return { volumeId: req.id };
    });
  }

  /**
   * Replaces the volume's data with the snapshot's: a reflink copy of the snapshot's disk.raw to a
   * temp file in the volume, grown to the volume's current size, then renamed over disk.raw. The
   * rename is atomic, so a crash leaves either the old or the new data, never none. Anything that
   * holds the old file open (a tgt LUN) keeps the old inode and must reopen it.
   */
  private async revertVolume(handle: DriverHandle, snapshotHandle: DriverHandle, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    return this.locks.run(String(handle.volumeId), async () => {
      const volumeId = handleId(handle, 'volumeId');
      const snapshotId = handleId(snapshotHandle, 'snapshotId');
      const disk = await this.fileSize(this.diskPath(volumeId));
      if (!disk) throw new StowageError('VOLUME_NOT_FOUND', `volume ${volumeId} is not on this btrfs backend`, { id: volumeId });
      const snapDisk = await this.fileSize(this.diskPath(snapshotId));
      if (!snapDisk) throw new StowageError('SNAPSHOT_NOT_FOUND', `snapshot ${snapshotId} is not on this btrfs backend`, { id: snapshotId });
      const tmp = childPath(this.subvolPath(volumeId), `.${DISK_FILE}.revert-${randomBytes(6).toString('hex')}`);
      // cp writes into the existing 0600 file and keeps its mode (a new file would get the source's, minus the umask).
      await createPrivateFile(tmp, 0);
      await this.run('cp', ['--reflink=always', this.diskPath(snapshotId), tmp], signal);
      await chmod(tmp, 0o600);
      if (disk.sizeBytes > snapDisk.sizeBytes) await this.run('truncate', ['-s', String(disk.sizeBytes), tmp], signal);
      await this.run('mv', ['-T', tmp, this.diskPath(volumeId)], signal);
    });
  }
}

/** Parses `btrfs:///mountpoint/subdir` plus options (`quota=on|off`) into driver options. */
export function parseBtrfsOptions(uri: URL, options: Readonly<Record<string, string>>): BtrfsDriverOptions {
  const quota = options.quota ?? 'off';
  if (quota !== 'on' && quota !== 'off') {
    throw new StowageError('INVALID_DRIVER_URI', `btrfs driver option quota must be "on" or "off", got ${JSON.stringify(quota)}`, { option: 'quota' });
  }
  return { dir: parseBtrfsUri(uri), quota: quota === 'on' };
}

/** Factory for `btrfs:///mountpoint/subdir` backends (subvolume per volume, offloaded snapshots and clones). */
export const btrfsDriverFactory: DriverFactory = {
  scheme: 'btrfs',
  kind: 'block',
  description: 'btrfs subvolume per volume with a sparse raw image; offloaded snapshots, clones and revert; qgroup quotas with quota=on',
  create(uri, options, deps: DriverDeps) {
    return new BtrfsDriver(parseBtrfsOptions(uri, options), deps.runner);
  },
  normalize: (typed) => parsePathUri(typed, 'btrfs', 'btrfs:///mountpoint/subdir').canonical,
};
