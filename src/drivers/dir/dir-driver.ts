import { link, open, readdir, rename, stat, statfs, truncate } from 'node:fs/promises';
import path from 'node:path';
import { StowageError } from '../../core/errors.js';
import { assertValidSize } from '../../core/sizes.js';
import type { VolumeFormat } from '../../core/states.js';
import type { CommandRunner } from '../../system/command-runner.js';
import type { BackendReport, BlockDriver, Capability, CreateVolume, DriverFactory, DriverHandle, DriverVolume } from '../sdk/types.js';
import { toDriverError } from './dir-errors.js';
import { parseSnapshotHandle, parseSourceHandle, parseVolumeHandle, volumeHandle, type CopyMethod, type DirSnapshotHandle } from './dir-handles.js';
import { assertImageId, imagePath, parseImageFileName, PROBE_TEMP_ID, sweepTempFiles, tempPath, type ImageKind } from './dir-paths.js';
import { parsePathUri } from '../sdk/path-uri.js';
import { parseDirUri, type DirConfig } from './dir-uri.js';
import { createSparseFile, exists, publishNoClobber, sameInode, syncDir, unlinkIfExists, writePrivately } from './file-ops.js';
import { QemuImg } from './qemu-img.js';

/** Timeout for `cp --reflink=always` (metadata only, but large files have many extents). */
const REFLINK_TIMEOUT_MS = 10 * 60 * 1000;

/** Names of common filesystems by statfs magic, for the probe's `info.filesystem`. */
const FS_MAGIC: Readonly<Record<number, string>> = {
  0xef53: 'ext4',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
  0x01021994: 'tmpfs',
  0x794c7630: 'overlayfs',
  0x6969: 'nfs',
};

/** The capabilities a dir backend honestly has, given whether qemu-img runs and whether reflink works. */
export function dirCapabilities(facts: { readonly qemuImg: boolean; readonly reflink: boolean }): Capability[] {
  const caps: Capability[] = ['thin', 'resize', 'format.raw'];
  if (facts.qemuImg) caps.push('format.qcow2');
  if (facts.qemuImg || facts.reflink) caps.push('snapshot', 'clone', 'revert');
  if (facts.reflink) caps.push('snapshot.offload', 'clone.offload');
  return caps;
}

/** One image file found on disk. */
interface FoundImage {
  readonly id: string;
  readonly format: VolumeFormat;
  readonly path: string;
}

/**
 * Volumes as files in one directory: sparse raw files or qcow2 images. Every file name is derived from
 * a validated id only; creates go through a temp name and a no-clobber link so a crash never leaves a
 * half file under a final name. Snapshots and clones use reflink when the filesystem has it, qcow2
 * backing files for qcow2, and a full `qemu-img convert` copy otherwise (the handle records which).
 */
export class DirDriver implements BlockDriver {
  readonly scheme = 'dir';
  readonly kind = 'block' as const;
  readonly dir: string;
  readonly localDir: string;
  readonly defaultFormat: VolumeFormat;
  private readonly runner: CommandRunner;
  private readonly qemu: QemuImg;
  private readonly inFlight = new Set<string>();
  private qemuImgAvailable: boolean | undefined;
  private reflinkCache: { readonly dev: number; readonly supported: boolean } | undefined;

  constructor(config: DirConfig, runner: CommandRunner) {
    this.dir = config.dir;
    this.localDir = config.dir;
    this.defaultFormat = config.defaultFormat;
    this.runner = runner;
    this.qemu = new QemuImg(runner);
  }

  /** Checks the directory is there and writable, sweeps abandoned temp files, reports capacity. */
  async probe(signal: AbortSignal): Promise<BackendReport> {
    signal.throwIfAborted();
    try {
      await this.assertDirUsable();
      const probeFile = await this.writeProbeFile();
      await unlinkIfExists(probeFile);
    } catch (err) {
      const e = toDriverError(err, `directory ${this.dir} is not usable`);
      throw new StowageError('BACKEND_UNAVAILABLE', e.message, { ...e.details, dir: this.dir }, { cause: err });
    }
    this.qemuImgAvailable = await this.qemu.available(signal);
    signal.throwIfAborted(); // a cancelled check says nothing about qemu-img
    const reflink = await this.reflinkSupported(signal);
    await this.cleanupTempFiles();
    const fs = await statfs(this.dir).catch((err: unknown) => { throw toDriverError(err, 'statfs'); });
    return {
      totalBytes: fs.blocks * fs.bsize,
      freeBytes: fs.bavail * fs.bsize,
      usedBytes: (fs.blocks - fs.bfree) * fs.bsize,
      capabilities: dirCapabilities({ qemuImg: this.qemuImgAvailable, reflink }),
      info: {
        path: this.dir,
        filesystem: FS_MAGIC[fs.type] ?? `0x${fs.type.toString(16)}`,
        defaultFormat: this.defaultFormat,
        reflink: reflink ? 'yes' : 'no',
        qemuImg: this.qemuImgAvailable ? 'yes' : 'no',
      },
    };
  }

  /** Removes temp files abandoned by a crash (older than 15 minutes, not in use by this process). */
  async cleanupTempFiles(minAgeMs?: number): Promise<string[]> {
    try {
      return await sweepTempFiles(this.dir, { keep: this.inFlight, ...(minAgeMs === undefined ? {} : { minAgeMs }) });
    } catch (err) {
      throw toDriverError(err, 'sweeping temp files');
    }
  }

  /** Creates `<dir>/<id>.<format>`; idempotent on the id (same size returns it, another size is INVALID_STATE). */
  async createVolume(req: CreateVolume, signal: AbortSignal): Promise<DriverHandle> {
    signal.throwIfAborted();
    assertImageId(req.id, 'volume');
    const format = req.format ?? this.defaultFormat;
    this.assertSizeFor(format, req.sizeBytes);
    await this.assertDirUsable();
    if (format === 'qcow2') await this.requireQemuImg(signal, 'qcow2 volumes');
    const existing = await this.checkExisting(req.id, format, req.sizeBytes, signal);
    if (existing) return existing;
    const final = imagePath(this.dir, req.id, 'volume', format);
    await this.withTemp(req.id, `creating ${req.id}`, async (tmp) => {
      if (format === 'raw') await createSparseFile(tmp, req.sizeBytes);
      else await writePrivately(tmp, () => this.qemu.createQcow2(tmp, req.sizeBytes, undefined, signal));
      return this.publish(tmp, final);
    });
    return (await this.checkExisting(req.id, format, req.sizeBytes, signal)) ?? volumeHandle(req.id, format);
  }

  /** Deletes the volume's file; a file already gone is success. */
  async deleteVolume(handle: DriverHandle, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const { id, format } = parseVolumeHandle(handle);
    await this.assertDirUsable();
    try {
      if (await unlinkIfExists(imagePath(this.dir, id, 'volume', format))) await syncDir(this.dir);
    } catch (err) {
      throw toDriverError(err, `deleting ${id}`, { volumeId: id });
    }
  }

  /** Grows the volume; the same size is a no-op and a smaller one is SHRINK_NOT_SUPPORTED. */
  async resizeVolume(handle: DriverHandle, sizeBytes: number, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const { id, format } = parseVolumeHandle(handle);
    this.assertSizeFor(format, sizeBytes);
    const file = await this.requireImage(id, 'volume', format);
    const current = await this.sizeOf(file, format, signal);
    if (sizeBytes === current) return;
    if (sizeBytes < current) {
      throw new StowageError('SHRINK_NOT_SUPPORTED', `volume ${id} is ${current} bytes; shrinking to ${sizeBytes} bytes is not supported`, { volumeId: id, currentBytes: current, requestedBytes: sizeBytes });
    }
    await this.grow(file, format, sizeBytes, signal, `resizing ${id}`);
  }

  /** Every volume file in the directory (temp files, snapshots and foreign files are skipped). */
  async listVolumes(signal: AbortSignal): Promise<DriverVolume[]> {
    signal.throwIfAborted();
    await this.assertDirUsable();
    const out: DriverVolume[] = [];
    for (const image of await this.listImages('volume')) {
      signal.throwIfAborted();
      try {
        if (image.format === 'raw') {
          const st = await stat(image.path);
          out.push({ id: image.id, sizeBytes: st.size, allocatedBytes: st.blocks * 512, handle: volumeHandle(image.id, 'raw') });
        } else {
          await this.requireQemuImg(signal, `reading qcow2 volume ${image.id}`);
          const info = await this.qemu.info(image.path, 'qcow2', signal);
          out.push({ id: image.id, sizeBytes: info.virtualSizeBytes, ...(info.actualSizeBytes === undefined ? {} : { allocatedBytes: info.actualSizeBytes }), handle: volumeHandle(image.id, 'qcow2') });
        }
      } catch (err) {
        const e = toDriverError(err, `reading ${image.id}`, { volumeId: image.id });
        if (!(await exists(image.path).catch(() => true))) continue; // deleted while listing
        throw e;
      }
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * Point-in-time image of the volume as `<dir>/<snapshotId>.<format>`: a reflink copy when the
   * filesystem has it, an external qcow2 snapshot (the current image becomes the read-only snapshot
   * and the volume a new overlay on it) for qcow2, and a full copy otherwise.
   */
  async createSnapshot(handle: DriverHandle, snapshotId: string, signal: AbortSignal): Promise<DriverHandle> {
    signal.throwIfAborted();
    const vol = parseVolumeHandle(handle);
    assertImageId(snapshotId, 'snapshot');
    const volPath = await this.requireImage(vol.id, 'volume', vol.format);
    const snapPath = imagePath(this.dir, snapshotId, 'snapshot', vol.format);
    const method = await this.chooseMethod(vol.format, vol.format, vol.format === 'qcow2', signal);
    const result = (sizeBytes: number): DirSnapshotHandle & DriverHandle => ({ id: snapshotId, volumeId: vol.id, format: vol.format, method, sizeBytes });

    const other = (await this.findImage(snapshotId, 'snapshot'))?.format;
    if (other !== undefined && other !== vol.format) {
      throw new StowageError('INVALID_STATE', `snapshot ${snapshotId} already exists as a ${other} image`, { snapshotId });
    }
    if (method === 'qcow2-backing') return result(await this.snapshotByOverlay(vol.id, volPath, snapPath, signal));
    if (await exists(snapPath)) return result(await this.sizeOf(snapPath, vol.format, signal));
    await this.withTemp(snapshotId, `snapshotting ${vol.id}`, async (tmp) => {
      await this.copyInto(method, { path: volPath, format: vol.format }, tmp, vol.format, signal);
      return this.publish(tmp, snapPath);
    });
    return result(await this.sizeOf(snapPath, vol.format, signal));
  }

  /** Deletes a snapshot; images backed by it are first rebased onto its own backing (or flattened). */
  async deleteSnapshot(snapshotHandle: DriverHandle, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const snap = parseSnapshotHandle(snapshotHandle);
    await this.assertDirUsable();
    const snapPath = imagePath(this.dir, snap.id, 'snapshot', snap.format);
    if (!(await exists(snapPath))) return;
    try {
      const dependents = await this.imagesBackedBy(snapPath, signal);
      if (dependents.length > 0) {
        // Rebase each dependent onto the snapshot's own backing file (or onto nothing): safe mode
        // copies the snapshot's data into the dependent, so its visible content does not change.
        const own = snap.format === 'qcow2' ? await this.qemu.info(snapPath, 'qcow2', signal) : undefined;
        const ownFormat = own?.backingFormat;
        let target: { file: string; format: VolumeFormat } | undefined;
        if (own?.backingFile !== undefined && (ownFormat === 'raw' || ownFormat === 'qcow2')) target = { file: own.backingFile, format: ownFormat };
        for (const dep of dependents) await this.qemu.rebase(dep.path, target, signal);
      }
      await unlinkIfExists(snapPath);
      await syncDir(this.dir);
    } catch (err) {
      throw toDriverError(err, `deleting snapshot ${snap.id}`, { snapshotId: snap.id });
    }
  }

  /** New volume from a volume or snapshot: reflink, a qcow2 overlay on a snapshot, or a full copy. */
  async cloneVolume(source: DriverHandle, req: CreateVolume, signal: AbortSignal): Promise<DriverHandle> {
    signal.throwIfAborted();
    const src = parseSourceHandle(source);
    assertImageId(req.id, 'volume');
    const format = req.format ?? this.defaultFormat;
    this.assertSizeFor(format, req.sizeBytes);
    await this.assertDirUsable();
    const existing = await this.checkExisting(req.id, format, req.sizeBytes, signal);
    if (existing) return existing;
    const srcPath = await this.requireImage(src.id, src.kind, src.format);
    const srcSize = await this.sizeOf(srcPath, src.format, signal);
    if (req.sizeBytes < srcSize) {
      throw new StowageError('SHRINK_NOT_SUPPORTED', `clone ${req.id} would be ${req.sizeBytes} bytes, smaller than its ${srcSize}-byte source`, { volumeId: req.id, sourceBytes: srcSize });
    }
    const method = await this.chooseMethod(src.format, format, src.kind === 'snapshot', signal);
    const final = imagePath(this.dir, req.id, 'volume', format);
    await this.withTemp(req.id, `cloning ${src.id} to ${req.id}`, async (tmp) => {
      await this.copyInto(method, { path: srcPath, format: src.format }, tmp, format, signal);
      if (req.sizeBytes > srcSize) await this.grow(tmp, format, req.sizeBytes, signal, `growing clone ${req.id}`);
      return this.publish(tmp, final);
    });
    await this.checkExisting(req.id, format, req.sizeBytes, signal);
    return volumeHandle(req.id, format, method);
  }

  /** Replaces the volume's content with the snapshot's (keeping the volume's size if it grew since). */
  async revertVolume(handle: DriverHandle, snapshotHandle: DriverHandle, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const vol = parseVolumeHandle(handle);
    const snap = parseSnapshotHandle(snapshotHandle);
    const volPath = await this.requireImage(vol.id, 'volume', vol.format);
    const snapPath = await this.requireImage(snap.id, 'snapshot', snap.format);
    const volSize = await this.sizeOf(volPath, vol.format, signal);
    if (vol.format === 'qcow2') await this.assertNotInUse(volPath, vol.id, signal);
    const method = await this.chooseMethod(snap.format, vol.format, true, signal);
    await this.withTemp(vol.id, `reverting ${vol.id} to ${snap.id}`, async (tmp) => {
      await this.copyInto(method, { path: snapPath, format: snap.format }, tmp, vol.format, signal);
      if (volSize > (await this.sizeOf(tmp, vol.format, signal))) await this.grow(tmp, vol.format, volSize, signal, `growing reverted ${vol.id}`);
      await rename(tmp, volPath);
      await syncDir(this.dir);
      return true;
    });
  }

  /** The image file and its format, for host-side `qemu-img convert`. */
  dataPath(handle: DriverHandle): { readonly path: string; readonly format: VolumeFormat } {
    const { id, format } = parseVolumeHandle(handle);
    return { path: imagePath(this.dir, id, 'volume', format), format };
  }

  // ---- internals ----

  private assertSizeFor(format: VolumeFormat, sizeBytes: number): void {
    assertValidSize(sizeBytes);
    if (format === 'qcow2' && sizeBytes % 512 !== 0) {
      throw new StowageError('INVALID_SIZE', `qcow2 volume sizes must be a multiple of 512 bytes, got ${sizeBytes}`, { sizeBytes });
    }
  }

  private async assertDirUsable(): Promise<void> {
    let st;
    try {
      st = await stat(this.dir);
    } catch (err) {
      throw toDriverError(err, `directory ${this.dir} is not reachable`, { dir: this.dir });
    }
    if (!st.isDirectory()) {
      throw new StowageError('BACKEND_UNAVAILABLE', `dir driver: ${this.dir} is not a directory`, { dir: this.dir });
    }
  }

  private async requireQemuImg(signal: AbortSignal, forWhat: string): Promise<void> {
    if (this.qemuImgAvailable === undefined) {
      const available = await this.qemu.available(signal);
      signal.throwIfAborted();
      this.qemuImgAvailable = available;
    }
    if (!this.qemuImgAvailable) {
      throw new StowageError('CAPABILITY_MISSING', `dir driver: ${forWhat} need qemu-img, which does not run on this host (install qemu-utils)`, { capability: 'format.qcow2' });
    }
  }

  private async writeProbeFile(): Promise<string> {
    const file = tempPath(this.dir, PROBE_TEMP_ID);
    const fh = await open(file, 'wx', 0o600);
    try {
      await fh.write(Buffer.alloc(4096, 0x5a));
      await fh.sync();
    } finally {
      await fh.close();
    }
    return file;
  }

  /** Tries `cp --reflink=always` of a tiny file once per filesystem (cached by device id). */
  private async reflinkSupported(signal: AbortSignal): Promise<boolean> {
    const dev = (await stat(this.dir)).dev;
    if (this.reflinkCache?.dev === dev) return this.reflinkCache.supported;
    const src = await this.writeProbeFile();
    const dst = tempPath(this.dir, PROBE_TEMP_ID);
    let supported = false;
    try {
      await this.runner.run('cp', ['--reflink=always', '--', src, dst], { timeoutMs: 30_000, signal });
      supported = true;
    } catch {
      supported = false;
    } finally {
      await unlinkIfExists(src);
      await unlinkIfExists(dst);
    }
    signal.throwIfAborted(); // never cache the answer of a cancelled check
    this.reflinkCache = { dev, supported };
    return supported;
  }

  /**
   * Picks how to copy an image: reflink if the filesystem has it, a qcow2 overlay when `overlayOk`
   * (the source never changes again: a snapshot, or the image that createSnapshot turns into one),
   * else a full copy.
   */
  private async chooseMethod(srcFormat: VolumeFormat, dstFormat: VolumeFormat, overlayOk: boolean, signal: AbortSignal): Promise<CopyMethod> {
    await this.assertDirUsable();
    if (srcFormat === dstFormat && (await this.reflinkSupported(signal))) return 'reflink';
    await this.requireQemuImg(signal, 'snapshots and clones without reflink');
    return dstFormat === 'qcow2' && overlayOk ? 'qcow2-backing' : 'copy';
  }

  /** Writes the copy into a new 0600 file `tmp` (see writePrivately: the tools pick their own modes). */
  private async copyInto(method: CopyMethod, src: { path: string; format: VolumeFormat }, tmp: string, format: VolumeFormat, signal: AbortSignal): Promise<void> {
    await writePrivately(tmp, async () => {
      switch (method) {
        case 'reflink':
          await this.runner.run('cp', ['--reflink=always', '--', src.path, tmp], { timeoutMs: REFLINK_TIMEOUT_MS, signal });
          return;
        case 'qcow2-backing':
          await this.qemu.createQcow2(tmp, undefined, { file: path.basename(src.path), format: src.format }, signal);
          return;
        case 'copy':
          await this.qemu.convert(src.path, src.format, tmp, format, signal);
          return;
      }
    });
  }

  /**
   * External qcow2 snapshot: hard-link the current image as the snapshot, then atomically replace the
   * volume's name with a new overlay on it. A crash between the two leaves the snapshot and volume
   * as one inode, which a retry detects and finishes. Returns the snapshot's size.
   */
  private async snapshotByOverlay(volId: string, volPath: string, snapPath: string, signal: AbortSignal): Promise<number> {
    try {
      const linkedNow = await sameInode(volPath, snapPath);
      if (!linkedNow && (await exists(snapPath))) return await this.sizeOf(snapPath, 'qcow2', signal); // done before
      await this.assertNotInUse(volPath, volId, signal);
      if (!linkedNow) await link(volPath, snapPath);
      await this.withTemp(volId, `overlaying ${volId}`, async (tmp) => {
        await writePrivately(tmp, () => this.qemu.createQcow2(tmp, undefined, { file: path.basename(snapPath), format: 'qcow2' }, signal));
        await rename(tmp, volPath);
        await syncDir(this.dir);
        return true;
      });
      return await this.sizeOf(snapPath, 'qcow2', signal);
    } catch (err) {
      throw toDriverError(err, `snapshotting ${volId}`, { volumeId: volId });
    }
  }

  /** Throws VOLUME_IN_USE when another process (e.g. QEMU) holds the image's write lock. */
  private async assertNotInUse(file: string, id: string, signal: AbortSignal): Promise<void> {
    try {
      await this.qemu.info(file, 'qcow2', signal, false);
    } catch (err) {
      throw toDriverError(err, `checking whether ${id} is in use`, { volumeId: id });
    }
  }

  /** qcow2 images in the directory whose backing file is `file`. */
  private async imagesBackedBy(file: string, signal: AbortSignal): Promise<FoundImage[]> {
    const qcow2 = [...(await this.listImages('volume')), ...(await this.listImages('snapshot'))].filter((i) => i.format === 'qcow2' && i.path !== file);
    if (qcow2.length === 0) return [];
    await this.requireQemuImg(signal, 'qcow2 images');
    const out: FoundImage[] = [];
    for (const image of qcow2) {
      const { backingFile } = await this.qemu.info(image.path, 'qcow2', signal);
      if (backingFile !== undefined && path.resolve(this.dir, backingFile) === file) out.push(image);
    }
    return out;
  }

  private async listImages(kind: ImageKind): Promise<FoundImage[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      throw toDriverError(err, `listing ${this.dir}`);
    }
    const out: FoundImage[] = [];
    for (const name of names) {
      const parsed = parseImageFileName(name);
      if (parsed?.kind === kind) out.push({ id: parsed.id, format: parsed.format, path: imagePath(this.dir, parsed.id, kind, parsed.format) });
    }
    return out;
  }

  private async findImage(id: string, kind: ImageKind): Promise<FoundImage | undefined> {
    for (const format of ['raw', 'qcow2'] as const) {
      const file = imagePath(this.dir, id, kind, format);
      if (await exists(file).catch((err: unknown) => { throw toDriverError(err, `looking up ${id}`); })) return { id, format, path: file };
    }
    return undefined;
  }

  private async requireImage(id: string, kind: ImageKind, format: VolumeFormat): Promise<string> {
    await this.assertDirUsable();
    const file = imagePath(this.dir, id, kind, format);
    if (!(await exists(file).catch((err: unknown) => { throw toDriverError(err, `looking up ${id}`); }))) {
      const code = kind === 'volume' ? 'VOLUME_NOT_FOUND' : 'SNAPSHOT_NOT_FOUND';
      throw new StowageError(code, `${kind} ${id} has no ${format} image in ${this.dir}`, { id, format });
    }
    return file;
  }

  /** The existing volume's handle if it matches the request; INVALID_STATE if it differs; undefined if absent. */
  private async checkExisting(id: string, format: VolumeFormat, sizeBytes: number, signal: AbortSignal): Promise<DriverHandle | undefined> {
    const found = await this.findImage(id, 'volume');
    if (!found) return undefined;
    if (found.format !== format) {
      throw new StowageError('INVALID_STATE', `volume ${id} already exists as a ${found.format} image, not ${format}`, { volumeId: id, existingFormat: found.format, requestedFormat: format });
    }
    const current = await this.sizeOf(found.path, format, signal);
    if (current !== sizeBytes) {
      throw new StowageError('INVALID_STATE', `volume ${id} already exists with ${current} bytes, not ${sizeBytes}`, { volumeId: id, existingBytes: current, requestedBytes: sizeBytes });
    }
    return volumeHandle(id, format);
  }

  private async sizeOf(file: string, format: VolumeFormat, signal: AbortSignal): Promise<number> {
    try {
      if (format === 'raw') return (await stat(file)).size;
      await this.requireQemuImg(signal, 'qcow2 images');
      return (await this.qemu.info(file, 'qcow2', signal)).virtualSizeBytes;
    } catch (err) {
      throw toDriverError(err, `reading the size of ${path.basename(file)}`);
    }
  }

  private async grow(file: string, format: VolumeFormat, sizeBytes: number, signal: AbortSignal, doing: string): Promise<void> {
    try {
      if (format === 'raw') await truncate(file, sizeBytes);
      else await this.qemu.resize(file, 'qcow2', sizeBytes, signal);
    } catch (err) {
      throw toDriverError(err, doing);
    }
  }

  private async publish(tmp: string, final: string): Promise<boolean> {
    const published = await publishNoClobber(tmp, final);
    if (published) await syncDir(this.dir);
    return published;
  }

  /** Runs `fn` with a fresh temp path for `id`, removing the temp file afterwards whatever happens. */
  private async withTemp(id: string, doing: string, fn: (tmp: string) => Promise<boolean>): Promise<boolean> {
    const tmp = tempPath(this.dir, id);
    this.inFlight.add(tmp);
    try {
      return await fn(tmp);
    } catch (err) {
      throw toDriverError(err, doing);
    } finally {
      await unlinkIfExists(tmp).catch(() => undefined);
      this.inFlight.delete(tmp);
    }
  }
}

/** Factory for `dir:///absolute/path[?format=raw|qcow2]` backends. */
export const dirDriverFactory: DriverFactory = {
  scheme: 'dir',
  kind: 'block',
  description: 'Volumes as sparse raw or qcow2 files in a local directory: dir:///srv/volumes?format=raw|qcow2',
  create(uri, options, deps) {
    return new DirDriver(parseDirUri(uri, options), deps.runner);
  },
  normalize: (typed) => parsePathUri(typed, 'dir', 'dir:///absolute/path[?format=raw|qcow2]').canonical,
};
