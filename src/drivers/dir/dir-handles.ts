import { StowageError } from '../../core/errors.js';
import type { VolumeFormat } from '../../core/states.js';
import type { DriverHandle } from '../sdk/types.js';
import { assertFormat, assertImageId } from './dir-paths.js';

/** How a snapshot, clone or revert was made, recorded in the handle so operators can see it. */
export const COPY_METHODS = ['reflink', 'qcow2-backing', 'copy'] as const;
/** One of COPY_METHODS. */
export type CopyMethod = (typeof COPY_METHODS)[number];

/** The dir driver's volume handle: the id and format are all it needs (the path is derived). */
export interface DirVolumeHandle {
  readonly id: string;
  readonly format: VolumeFormat;
  /** Set on clones: how the data was copied. */
  readonly method?: CopyMethod;
}

/** The dir driver's snapshot handle. */
export interface DirSnapshotHandle {
  readonly id: string;
  readonly volumeId: string;
  readonly format: VolumeFormat;
  readonly method: CopyMethod;
  readonly sizeBytes: number;
}

function requireObject(handle: DriverHandle | undefined, what: string): Readonly<Record<string, unknown>> {
  if (typeof handle !== 'object' || handle === null) {
    throw new StowageError('VALIDATION_FAILED', `dir driver: ${what} handle must be an object`, {});
  }
  return handle;
}

/** Validates a volume handle (only `id` and `format` are trusted; paths are never read from it). */
export function parseVolumeHandle(handle: DriverHandle): { id: string; format: VolumeFormat } {
  const h = requireObject(handle, 'volume');
  const { id, format } = h;
  assertImageId(id, 'volume');
  assertFormat(format);
  return { id, format };
}

/** Validates a snapshot handle. */
export function parseSnapshotHandle(handle: DriverHandle): { id: string; format: VolumeFormat } {
  const h = requireObject(handle, 'snapshot');
  const { id, format } = h;
  assertImageId(id, 'snapshot');
  assertFormat(format);
  return { id, format };
}

/** Validates a clone source, which is either a volume or a snapshot handle (told apart by id prefix). */
export function parseSourceHandle(handle: DriverHandle): { id: string; format: VolumeFormat; kind: 'volume' | 'snapshot' } {
  const h = requireObject(handle, 'clone source');
  return typeof h.id === 'string' && h.id.startsWith('snap-')
    ? { ...parseSnapshotHandle(h), kind: 'snapshot' }
    : { ...parseVolumeHandle(h), kind: 'volume' };
}

/** Builds a volume handle. */
export function volumeHandle(id: string, format: VolumeFormat, method?: CopyMethod): DirVolumeHandle & DriverHandle {
  return method === undefined ? { id, format } : { id, format, method };
}
