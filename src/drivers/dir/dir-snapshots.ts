import { link, rename } from 'node:fs/promises';
import path from 'node:path';
import { StowageError } from '../../core/errors.js';
import type { VolumeFormat } from '../../core/states.js';
import type { SnapshotPort } from '../sdk/ports.js';
import type { DriverHandle } from '../sdk/types.js';
import { toDriverError } from './dir-errors.js';
import { parseSnapshotHandle, parseVolumeHandle, type DirSnapshotHandle } from './dir-handles.js';
import type { DirImages, FoundImage } from './dir-images.js';
import { assertImageId, imagePath } from './dir-paths.js';
import { exists, sameInode, syncDir, unlinkIfExists, writePrivately } from './file-ops.js';

/**
 * Snapshots of a dir backend's volumes as `<dir>/<snapshotId>.<format>`: a reflink copy when the
 * filesystem has it, an external qcow2 snapshot (the current image becomes the read-only snapshot
 * and the volume a new overlay on it) for qcow2, and a full copy otherwise.
 */
export class DirSnapshots implements SnapshotPort {
  constructor(private readonly images: DirImages) {}

  /** Takes the snapshot; `snapshotId` is the idempotency key. */
  async create(handle: DriverHandle, snapshotId: string, signal: AbortSignal): Promise<DriverHandle> {
    signal.throwIfAborted();
    const img = this.images;
    const vol = parseVolumeHandle(handle);
    assertImageId(snapshotId, 'snapshot');
    const volPath = await img.requireImage(vol.id, 'volume', vol.format);
    const snapPath = imagePath(img.dir, snapshotId, 'snapshot', vol.format);
    const method = await img.chooseMethod(vol.format, vol.format, vol.format === 'qcow2', signal);
    const result = (sizeBytes: number): DirSnapshotHandle & DriverHandle => ({ id: snapshotId, volumeId: vol.id, format: vol.format, method, sizeBytes });

    const other = (await img.findImage(snapshotId, 'snapshot'))?.format;
    if (other !== undefined && other !== vol.format) {
      throw new StowageError('INVALID_STATE', `snapshot ${snapshotId} already exists as a ${other} image`, { snapshotId });
    }
    if (method === 'qcow2-backing') return result(await this.snapshotByOverlay(vol.id, volPath, snapPath, signal));
    if (await exists(snapPath)) return result(await img.sizeOf(snapPath, vol.format, signal));
    await img.withTemp(snapshotId, `snapshotting ${vol.id}`, async (tmp) => {
      await img.copyInto(method, { path: volPath, format: vol.format }, tmp, vol.format, signal);
      return img.publish(tmp, snapPath);
    });
    return result(await img.sizeOf(snapPath, vol.format, signal));
  }

  /** Deletes a snapshot; images backed by it are first rebased onto its own backing (or flattened). */
  async delete(snapshotHandle: DriverHandle, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const img = this.images;
    const snap = parseSnapshotHandle(snapshotHandle);
    await img.assertDirUsable();
    const snapPath = imagePath(img.dir, snap.id, 'snapshot', snap.format);
    if (!(await exists(snapPath))) return;
    try {
      const dependents = await this.imagesBackedBy(snapPath, signal);
      if (dependents.length > 0) {
        // Rebase each dependent onto the snapshot's own backing file (or onto nothing): safe mode
        // copies the snapshot's data into the dependent, so its visible content does not change.
        const own = snap.format === 'qcow2' ? await img.qemu.info(snapPath, 'qcow2', signal) : undefined;
        const ownFormat = own?.backingFormat;
        let target: { file: string; format: VolumeFormat } | undefined;
        if (own?.backingFile !== undefined && (ownFormat === 'raw' || ownFormat === 'qcow2')) target = { file: own.backingFile, format: ownFormat };
        for (const dep of dependents) await img.qemu.rebase(dep.path, target, signal);
      }
      await unlinkIfExists(snapPath);
      await syncDir(img.dir);
    } catch (err) {
      throw toDriverError(err, `deleting snapshot ${snap.id}`, { snapshotId: snap.id });
    }
  }

  /**
   * External qcow2 snapshot: hard-link the current image as the snapshot, then atomically replace the
   * volume's name with a new overlay on it. A crash between the two leaves the snapshot and volume
   * as one inode, which a retry detects and finishes. Returns the snapshot's size.
   */
  private async snapshotByOverlay(volId: string, volPath: string, snapPath: string, signal: AbortSignal): Promise<number> {
    const img = this.images;
    try {
      const linkedNow = await sameInode(volPath, snapPath);
      if (!linkedNow && (await exists(snapPath))) return await img.sizeOf(snapPath, 'qcow2', signal); // done before
      await img.assertNotInUse(volPath, volId, signal);
      if (!linkedNow) await link(volPath, snapPath);
      await img.withTemp(volId, `overlaying ${volId}`, async (tmp) => {
        await writePrivately(tmp, () => img.qemu.createQcow2(tmp, undefined, { file: path.basename(snapPath), format: 'qcow2' }, signal));
        await rename(tmp, volPath);
        await syncDir(img.dir);
        return true;
      });
      return await img.sizeOf(snapPath, 'qcow2', signal);
    } catch (err) {
      throw toDriverError(err, `snapshotting ${volId}`, { volumeId: volId });
    }
  }

  /** qcow2 images in the directory whose backing file is `file`. */
  private async imagesBackedBy(file: string, signal: AbortSignal): Promise<FoundImage[]> {
    const img = this.images;
    const qcow2 = [...(await img.listImages('volume')), ...(await img.listImages('snapshot'))].filter((i) => i.format === 'qcow2' && i.path !== file);
    if (qcow2.length === 0) return [];
    await img.requireQemuImg(signal, 'qcow2 images');
    const out: FoundImage[] = [];
    for (const image of qcow2) {
      const { backingFile } = await img.qemu.info(image.path, 'qcow2', signal);
      if (backingFile !== undefined && path.resolve(img.dir, backingFile) === file) out.push(image);
    }
    return out;
  }
}
