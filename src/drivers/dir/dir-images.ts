import { open, readdir, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { StowageError } from '../../core/errors.js';
import { assertValidSize } from '../../core/sizes.js';
import type { VolumeFormat } from '../../core/states.js';
import type { CommandRunner } from '../../system/command-runner.js';
import { QemuImg } from '../../system/qemu-img.js';
import type { DriverHandle } from '../sdk/types.js';
import { toDriverError } from './dir-errors.js';
import { volumeHandle, type CopyMethod } from './dir-handles.js';
import { imagePath, parseImageFileName, PROBE_TEMP_ID, sweepTempFiles, tempPath, type ImageKind } from './dir-paths.js';
import type { DirConfig } from './dir-uri.js';
import { exists, publishNoClobber, syncDir, unlinkIfExists, writePrivately } from './file-ops.js';

/** Timeout for `cp --reflink=always` (metadata only, but large files have many extents). */
const REFLINK_TIMEOUT_MS = 10 * 60 * 1000;

/** One image file found on disk. */
export interface FoundImage {
  readonly id: string;
  readonly format: VolumeFormat;
  readonly path: string;
}

/**
 * The image files of one dir backend and the primitives every part of the driver builds on: lookups
 * by validated id, sizes, growing, temp files published with a no-clobber link, and the choice and
 * running of a copy method (reflink, qcow2 overlay, full copy). Shared by the driver and its
 * snapshot, clone and revert ports, so the facts it caches (qemu-img runs, reflink works) are
 * learned once per backend.
 */
export class DirImages {
  readonly dir: string;
  readonly defaultFormat: VolumeFormat;
  readonly runner: CommandRunner;
  readonly qemu: QemuImg;
  private readonly inFlight = new Set<string>();
  private qemuImgAvailable: boolean | undefined;
  private reflinkCache: { readonly dev: number; readonly supported: boolean } | undefined;

  constructor(config: DirConfig, runner: CommandRunner) {
    this.dir = config.dir;
    this.defaultFormat = config.defaultFormat;
    this.runner = runner;
    this.qemu = new QemuImg(runner);
  }

  /** Asks whether qemu-img runs (a probe's look: the runner's shared answer, see QemuImg.available); later checks use it. */
  async checkQemuImg(signal: AbortSignal): Promise<boolean> {
    const available = await this.qemu.available(signal);
    signal.throwIfAborted(); // a cancelled check says nothing about qemu-img
    this.qemuImgAvailable = available;
    return available;
  }

  /** Removes temp files abandoned by a crash (older than 15 minutes, not in use by this process). */
  async cleanupTempFiles(minAgeMs?: number): Promise<string[]> {
    try {
      return await sweepTempFiles(this.dir, { keep: this.inFlight, ...(minAgeMs === undefined ? {} : { minAgeMs }) });
    } catch (err) {
      throw toDriverError(err, 'sweeping temp files');
    }
  }

  /** Throws INVALID_SIZE for a size the format cannot hold. */
  assertSizeFor(format: VolumeFormat, sizeBytes: number): void {
    assertValidSize(sizeBytes);
    if (format === 'qcow2' && sizeBytes % 512 !== 0) {
      throw new StowageError('INVALID_SIZE', `qcow2 volume sizes must be a multiple of 512 bytes, got ${sizeBytes}`, { sizeBytes });
    }
  }

  /** Throws BACKEND_UNAVAILABLE unless the directory is there and is a directory. */
  async assertDirUsable(): Promise<void> {
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

  /** Throws CAPABILITY_MISSING (naming `forWhat`) when qemu-img does not run here. */
  async requireQemuImg(signal: AbortSignal, forWhat: string): Promise<void> {
    if (this.qemuImgAvailable === undefined) await this.checkQemuImg(signal);
    if (!this.qemuImgAvailable) {
      throw new StowageError('CAPABILITY_MISSING', `dir driver: ${forWhat} need qemu-img, which does not run on this host (install qemu-utils)`, { capability: 'format.qcow2' });
    }
  }

  /** Writes and syncs a small 0600 temp file (the probe's write check and the reflink test's source). */
  async writeProbeFile(): Promise<string> {
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
  async reflinkSupported(signal: AbortSignal): Promise<boolean> {
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
   * (the source never changes again: a snapshot, or the image that a snapshot turns into one),
   * else a full copy.
   */
  async chooseMethod(srcFormat: VolumeFormat, dstFormat: VolumeFormat, overlayOk: boolean, signal: AbortSignal): Promise<CopyMethod> {
    await this.assertDirUsable();
    if (srcFormat === dstFormat && (await this.reflinkSupported(signal))) return 'reflink';
    await this.requireQemuImg(signal, 'snapshots and clones without reflink');
    return dstFormat === 'qcow2' && overlayOk ? 'qcow2-backing' : 'copy';
  }

  /** Writes the copy into a new 0600 file `tmp` (see writePrivately: the tools pick their own modes). */
  async copyInto(method: CopyMethod, src: { path: string; format: VolumeFormat }, tmp: string, format: VolumeFormat, signal: AbortSignal): Promise<void> {
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

  /** Throws VOLUME_IN_USE when another process (e.g. QEMU) holds the image's write lock. */
  async assertNotInUse(file: string, id: string, signal: AbortSignal): Promise<void> {
    try {
      await this.qemu.info(file, 'qcow2', signal, false);
    } catch (err) {
      throw toDriverError(err, `checking whether ${id} is in use`, { volumeId: id });
    }
  }

  /** Every image of `kind` in the directory (temp and foreign files skipped). */
  async listImages(kind: ImageKind): Promise<FoundImage[]> {
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

  /** The image of `id` in whichever format it exists, if it does. */
  async findImage(id: string, kind: ImageKind): Promise<FoundImage | undefined> {
    for (const format of ['raw', 'qcow2'] as const) {
      const file = imagePath(this.dir, id, kind, format);
      if (await exists(file).catch((err: unknown) => { throw toDriverError(err, `looking up ${id}`); })) return { id, format, path: file };
    }
    return undefined;
  }

  /** The path of an image that must exist; VOLUME_NOT_FOUND or SNAPSHOT_NOT_FOUND otherwise. */
  async requireImage(id: string, kind: ImageKind, format: VolumeFormat): Promise<string> {
    await this.assertDirUsable();
    const file = imagePath(this.dir, id, kind, format);
    if (!(await exists(file).catch((err: unknown) => { throw toDriverError(err, `looking up ${id}`); }))) {
      const code = kind === 'volume' ? 'VOLUME_NOT_FOUND' : 'SNAPSHOT_NOT_FOUND';
      throw new StowageError(code, `${kind} ${id} has no ${format} image in ${this.dir}`, { id, format });
    }
    return file;
  }

  /** The existing volume's handle if it matches the request; INVALID_STATE if it differs; undefined if absent. */
  async checkExisting(id: string, format: VolumeFormat, sizeBytes: number, signal: AbortSignal): Promise<DriverHandle | undefined> {
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

  /** The image's virtual size in bytes. */
  async sizeOf(file: string, format: VolumeFormat, signal: AbortSignal): Promise<number> {
    try {
      if (format === 'raw') return (await stat(file)).size;
      await this.requireQemuImg(signal, 'qcow2 images');
      return (await this.qemu.info(file, 'qcow2', signal)).virtualSizeBytes;
    } catch (err) {
      throw toDriverError(err, `reading the size of ${path.basename(file)}`);
    }
  }

  /** Grows the image's virtual size to `sizeBytes`. */
  async grow(file: string, format: VolumeFormat, sizeBytes: number, signal: AbortSignal, doing: string): Promise<void> {
    try {
      if (format === 'raw') await truncate(file, sizeBytes);
      else await this.qemu.resize(file, 'qcow2', sizeBytes, signal);
    } catch (err) {
      throw toDriverError(err, doing);
    }
  }

  /** Links `tmp` to `final` unless `final` exists; true when it did (and synced the directory). */
  async publish(tmp: string, final: string): Promise<boolean> {
    const published = await publishNoClobber(tmp, final);
    if (published) await syncDir(this.dir);
    return published;
  }

  /** Runs `fn` with a fresh temp path for `id`, removing the temp file afterwards whatever happens. */
  async withTemp(id: string, doing: string, fn: (tmp: string) => Promise<boolean>): Promise<boolean> {
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
