import type { CreateVolumeRequest } from './schemas/volume-schema.js';

/** True when a create request is a clone (of a snapshot or of a volume). */
export function isClone(r: Pick<CreateVolumeRequest, 'fromSnapshot' | 'fromVolume'>): boolean {
  return Boolean(r.fromSnapshot ?? r.fromVolume);
}

/**
 * The size rule of a create, written once for the API and the CLI: the size is required unless the
 * volume is a clone (which defaults to its source's size). True when `r` breaks it; each caller
 * words the error in its own vocabulary (`sizeBytes` for the API, `--size` for the CLI).
 */
export function sizeIsMissing(r: Pick<CreateVolumeRequest, 'sizeBytes' | 'fromSnapshot' | 'fromVolume'>): boolean {
  return r.sizeBytes === undefined && !isClone(r);
}
