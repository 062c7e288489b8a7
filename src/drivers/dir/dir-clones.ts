import { rename } from 'node:fs/promises';
import { StowageError } from '../../core/errors.js';
import type { ClonePort, RevertPort } from '../sdk/ports.js';
import type { CreateVolume, DriverHandle } from '../sdk/types.js';
import { parseSnapshotHandle, parseSourceHandle, parseVolumeHandle, volumeHandle } from './dir-handles.js';
import type { DirImages } from './dir-images.js';
import { assertImageId, imagePath } from './dir-paths.js';
import { syncDir } from './file-ops.js';

/**
 * The two ways a dir backend copies an image into a volume: a new volume from a volume or snapshot
 * (clone), and a volume's content replaced by a snapshot's (revert). Both pick reflink, a qcow2
 * overlay or a full copy, and write through a temp file so a crash never leaves half an image.
 */
export class DirClones implements ClonePort, RevertPort {
  constructor(private readonly images: DirImages) {}

  /** New volume from a volume or snapshot: reflink, a qcow2 overlay on a snapshot, or a full copy. */
  async clone(source: DriverHandle, req: CreateVolume, signal: AbortSignal): Promise<DriverHandle> {
    signal.throwIfAborted();
    const img = this.images;
    const src = parseSourceHandle(source);
    assertImageId(req.id, 'volume');
    const format = req.format ?? img.defaultFormat;
    img.assertSizeFor(format, req.sizeBytes);
    await img.assertDirUsable();
    const existing = await img.checkExisting(req.id, format, req.sizeBytes, signal);
    if (existing) return existing;
    const srcPath = await img.requireImage(src.id, src.kind, src.format);
    const srcSize = await img.sizeOf(srcPath, src.format, signal);
    if (req.sizeBytes < srcSize) {
      throw new StowageError('SHRINK_NOT_SUPPORTED', `clone ${req.id} would be ${req.sizeBytes} bytes, smaller than its ${srcSize}-byte source`, { volumeId: req.id, sourceBytes: srcSize });
    }
    const method = await img.chooseMethod(src.format, format, src.kind === 'snapshot', signal);
    const final = imagePath(img.dir, req.id, 'volume', format);
    await img.withTemp(req.id, `cloning ${src.id} to ${req.id}`, async (tmp) => {
      await img.copyInto(method, { path: srcPath, format: src.format }, tmp, format, signal);
      if (req.sizeBytes > srcSize) await img.grow(tmp, format, req.sizeBytes, signal, `growing clone ${req.id}`);
      return img.publish(tmp, final);
    });
    await img.checkExisting(req.id, format, req.sizeBytes, signal);
    return volumeHandle(req.id, format, method);
  }

  /** Replaces the volume's content with the snapshot's (keeping the volume's size if it grew since). */
  async revert(handle: DriverHandle, snapshotHandle: DriverHandle, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const img = this.images;
    const vol = parseVolumeHandle(handle);
    const snap = parseSnapshotHandle(snapshotHandle);
    const volPath = await img.requireImage(vol.id, 'volume', vol.format);
    const snapPath = await img.requireImage(snap.id, 'snapshot', snap.format);
    const volSize = await img.sizeOf(volPath, vol.format, signal);
    if (vol.format === 'qcow2') await img.assertNotInUse(volPath, vol.id, signal);
    const method = await img.chooseMethod(snap.format, vol.format, true, signal);
    await img.withTemp(vol.id, `reverting ${vol.id} to ${snap.id}`, async (tmp) => {
      await img.copyInto(method, { path: snapPath, format: snap.format }, tmp, vol.format, signal);
      if (volSize > (await img.sizeOf(tmp, vol.format, signal))) await img.grow(tmp, vol.format, volSize, signal, `growing reverted ${vol.id}`);
      await rename(tmp, volPath);
      await syncDir(img.dir);
      return true;
    });
  }
}
