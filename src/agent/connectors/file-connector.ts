import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { StowageError } from '../../core/errors.js';
import type { VolumeFormat } from '../../core/states.js';
import type { AccessMode, ConnectionInfo } from '../../drivers/sdk/types.js';
import type { AttachedVolume } from '../hypervisor/attached-volumes.js';
import type { FileAttachRequest, QemuVm } from '../hypervisor/qemu-vm.js';
import { assertModeAllowed, type Connector } from './connector.js';

/** Where the file connector may open images. */
export interface FileConnectorOptions {
  /** Absolute directories (dir backends mounted on this host); images outside them are refused. */
  readonly allowedRoots: readonly string[];
}

/** The image format named by a file's extension (`.raw` or `.qcow2`, as the dir driver names them), or undefined. */
export function formatFromPath(file: string): VolumeFormat | undefined {
  if (file.endsWith('.qcow2')) return 'qcow2';
  if (file.endsWith('.raw')) return 'raw';
  return undefined;
}

/** True when `file` lies strictly below `root` (both already resolved). */
export function isInside(root: string, file: string): boolean {
  const rel = path.relative(root, file);
  return rel.length > 0 && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

/** Attaches local image files (dir backends) as disks; the path must resolve inside an allowed root. */
export class FileConnector implements Connector {
  readonly protocol = 'file' as const;
  private readonly allowedRoots: readonly string[];

  constructor(options: FileConnectorOptions) {
    for (const r of options.allowedRoots) {
      if (!path.isAbsolute(r)) throw new StowageError('VALIDATION_FAILED', `agent: allowed root ${JSON.stringify(r)} must be absolute`, { root: r });
    }
    this.allowedRoots = options.allowedRoots;
  }

  /** Attaches the image at `info.path`; throws as `prepare` does. */
  async connect(vm: QemuVm, volumeId: string, info: ConnectionInfo, mode: AccessMode, signal?: AbortSignal): Promise<AttachedVolume> {
    return vm.attachFile(await this.prepare(volumeId, info, mode), signal);
  }

  /**
   * Checks the connection info and resolves the image path (symlinks included); throws
   * VALIDATION_FAILED for an unknown format or a path outside the allowed roots, VOLUME_NOT_FOUND
   * for a missing image.
   */
  async prepare(volumeId: string, info: ConnectionInfo, mode: AccessMode): Promise<FileAttachRequest> {
    if (info.protocol !== 'file') throw new StowageError('VALIDATION_FAILED', `agent: file connector got a ${info.protocol} connection`, { volumeId });
    assertModeAllowed(info, mode, volumeId);
    if (info.path === undefined || !path.isAbsolute(info.path)) {
      throw new StowageError('VALIDATION_FAILED', `agent: file connection info for ${volumeId} lacks an absolute path`, { volumeId });
    }
    const format = formatFromPath(info.path);
    if (format === undefined) throw new StowageError('VALIDATION_FAILED', `agent: cannot tell the format of ${info.path} (expected .raw or .qcow2)`, { volumeId, path: info.path });
    const real = await this.resolveAllowed(info.path, volumeId);
    return { volumeId, path: real, format, readOnly: mode === 'ro' };
  }

  /** Detaches the volume (device and nodes). */
  async disconnect(vm: QemuVm, volumeId: string, signal?: AbortSignal): Promise<void> {
    await vm.detach(volumeId, signal);
  }

  private async resolveAllowed(file: string, volumeId: string): Promise<string> {
    let real: string;
    try {
      real = await realpath(file);
    } catch (err) {
      throw new StowageError('VOLUME_NOT_FOUND', `agent: image ${file} of ${volumeId} is not there`, { volumeId, path: file }, { cause: err });
    }
    for (const root of this.allowedRoots) {
      const realRoot = await realpath(root).catch(() => undefined);
      if (realRoot !== undefined && isInside(realRoot, real)) return real;
    }
    throw new StowageError('VALIDATION_FAILED', `agent: image ${file} of ${volumeId} is outside the allowed directories`, { volumeId, path: file });
  }
}
