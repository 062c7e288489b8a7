import { stat, statfs } from 'node:fs/promises';
import { StowageError } from '../../core/errors.js';
import type { VolumeFormat } from '../../core/states.js';
import type { CommandRunner } from '../../system/command-runner.js';
import { fileAccessPort } from '../sdk/file-access.js';
import { fileDataPort } from '../sdk/file-streams.js';
import type { AccessPort, DataPort } from '../sdk/ports.js';
import type { BackendReport, BlockDriver, Capability, CreateVolume, DriverFactory, DriverHandle, DriverVolume } from '../sdk/types.js';
import { DirClones } from './dir-clones.js';
import { toDriverError } from './dir-errors.js';
import { parseVolumeHandle, volumeHandle } from './dir-handles.js';
import { DirImages } from './dir-images.js';
import { assertImageId, imagePath } from './dir-paths.js';
import { DirSnapshots } from './dir-snapshots.js';
import { parsePathUri } from '../sdk/path-uri.js';
import { parseDirUri, type DirConfig } from './dir-uri.js';
import { createSparseFile, exists, syncDir, unlinkIfExists, writePrivately } from './file-ops.js';

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

/** Every capability a dir backend may report (with qemu-img and reflink both there). */
const DIR_CAPABILITIES: ReadonlySet<Capability> = new Set(dirCapabilities({ qemuImg: true, reflink: true }));

/**
 * Volumes as files in one directory: sparse raw files or qcow2 images. Every file name is derived from
 * a validated id only; creates go through a temp name and a no-clobber link so a crash never leaves a
 * half file under a final name. Snapshots and clones use reflink when the filesystem has it, qcow2
 * backing files for qcow2, and a full `qemu-img convert` copy otherwise (the handle records which).
 * Hosts open the files directly (file access: nothing to revoke on the backend).
 */
export class DirDriver implements BlockDriver {
  readonly scheme = 'dir';
  readonly kind = 'block' as const;
  readonly capabilities = DIR_CAPABILITIES;
  readonly dir: string;
  readonly localDir: string;
  readonly defaultFormat: VolumeFormat;
  readonly snapshots: DirSnapshots;
  readonly clones: DirClones;
  readonly revert: DirClones;
  readonly data: DataPort;
  readonly access: AccessPort;
  private readonly images: DirImages;

  constructor(config: DirConfig, runner: CommandRunner) {
    this.dir = config.dir;
    this.localDir = config.dir;
    this.defaultFormat = config.defaultFormat;
    this.images = new DirImages(config, runner);
    this.snapshots = new DirSnapshots(this.images);
    this.clones = new DirClones(this.images);
    this.revert = this.clones;
    const locate = (handle: DriverHandle): { path: string; format: VolumeFormat } => {
      const { id, format } = parseVolumeHandle(handle);
      return { path: imagePath(this.dir, id, 'volume', format), format };
    };
    this.data = fileDataPort(locate);
    this.access = fileAccessPort(this.data);
  }

  /** Checks the directory is there and writable, sweeps abandoned temp files, reports capacity. */
  async probe(signal: AbortSignal): Promise<BackendReport> {
    signal.throwIfAborted();
    const img = this.images;
    try {
      await img.assertDirUsable();
      const probeFile = await img.writeProbeFile();
      await unlinkIfExists(probeFile);
    } catch (err) {
      const e = toDriverError(err, `directory ${this.dir} is not usable`);
      throw new StowageError('BACKEND_UNAVAILABLE', e.message, { ...e.details, dir: this.dir }, { cause: err });
    }
    const qemuImg = await img.checkQemuImg(signal);
    const reflink = await img.reflinkSupported(signal);
    await this.cleanupTempFiles();
    const fs = await statfs(this.dir).catch((err: unknown) => { throw toDriverError(err, 'statfs'); });
    return {
      totalBytes: fs.blocks * fs.bsize,
      freeBytes: fs.bavail * fs.bsize,
      usedBytes: (fs.blocks - fs.bfree) * fs.bsize,
      capabilities: dirCapabilities({ qemuImg, reflink }),
      info: {
        path: this.dir,
        filesystem: FS_MAGIC[fs.type] ?? `0x${fs.type.toString(16)}`,
        defaultFormat: this.defaultFormat,
        reflink: reflink ? 'yes' : 'no',
        qemuImg: qemuImg ? 'yes' : 'no',
      },
    };
  }

  /** Removes temp files abandoned by a crash (older than 15 minutes, not in use by this process). */
  cleanupTempFiles(minAgeMs?: number): Promise<string[]> {
    return this.images.cleanupTempFiles(minAgeMs);
  }

  /** Creates `<dir>/<id>.<format>`; idempotent on the id (same size returns it, another size is INVALID_STATE). */
  async createVolume(req: CreateVolume, signal: AbortSignal): Promise<DriverHandle> {
    signal.throwIfAborted();
    const img = this.images;
    assertImageId(req.id, 'volume');
    const format = req.format ?? this.defaultFormat;
    img.assertSizeFor(format, req.sizeBytes);
    await img.assertDirUsable();
    if (format === 'qcow2') await img.requireQemuImg(signal, 'qcow2 volumes');
    const existing = await img.checkExisting(req.id, format, req.sizeBytes, signal);
    if (existing) return existing;
    const final = imagePath(this.dir, req.id, 'volume', format);
    await img.withTemp(req.id, `creating ${req.id}`, async (tmp) => {
      if (format === 'raw') await createSparseFile(tmp, req.sizeBytes);
      else await writePrivately(tmp, () => img.qemu.createQcow2(tmp, req.sizeBytes, undefined, signal));
      return img.publish(tmp, final);
    });
    return (await img.checkExisting(req.id, format, req.sizeBytes, signal)) ?? volumeHandle(req.id, format);
  }

  /** Deletes the volume's file; a file already gone is success. */
  async deleteVolume(handle: DriverHandle, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const { id, format } = parseVolumeHandle(handle);
    await this.images.assertDirUsable();
    try {
      if (await unlinkIfExists(imagePath(this.dir, id, 'volume', format))) await syncDir(this.dir);
    } catch (err) {
      throw toDriverError(err, `deleting ${id}`, { volumeId: id });
    }
  }

  /** Grows the volume; the same size is a no-op and a smaller one is SHRINK_NOT_SUPPORTED. */
  async resizeVolume(handle: DriverHandle, sizeBytes: number, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const img = this.images;
    const { id, format } = parseVolumeHandle(handle);
    img.assertSizeFor(format, sizeBytes);
    const file = await img.requireImage(id, 'volume', format);
    const current = await img.sizeOf(file, format, signal);
    if (sizeBytes === current) return;
    if (sizeBytes < current) {
      throw new StowageError('SHRINK_NOT_SUPPORTED', `volume ${id} is ${current} bytes; shrinking to ${sizeBytes} bytes is not supported`, { volumeId: id, currentBytes: current, requestedBytes: sizeBytes });
    }
    await img.grow(file, format, sizeBytes, signal, `resizing ${id}`);
  }

  /** Every volume file in the directory (temp files, snapshots and foreign files are skipped). */
  async listVolumes(signal: AbortSignal): Promise<DriverVolume[]> {
    signal.throwIfAborted();
    const img = this.images;
    await img.assertDirUsable();
    const out: DriverVolume[] = [];
    for (const image of await img.listImages('volume')) {
      signal.throwIfAborted();
      try {
        if (image.format === 'raw') {
          const st = await stat(image.path);
          out.push({ id: image.id, sizeBytes: st.size, allocatedBytes: st.blocks * 512, handle: volumeHandle(image.id, 'raw') });
        } else {
          await img.requireQemuImg(signal, `reading qcow2 volume ${image.id}`);
          const info = await img.qemu.info(image.path, 'qcow2', signal);
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
