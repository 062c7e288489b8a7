import { Type, type Static } from '@sinclair/typebox';
import { StowageError } from '../errors.js';
import { isClone, sizeIsMissing } from '../volume-requests.js';
import type { BackendId, VolumeId } from '../ids.js';
import { AllTenants, Bytes, IdString, ListQuery, Name, Nullable, literals } from '../models.js';
import { VOLUME_FORMATS, VOLUME_STATES } from '../states.js';
import { OperationSchema } from './operation-schema.js';
import { PLACEMENT_POLICIES, PlacementSummarySchema } from './placement-schema.js';

const Tags = Type.Array(Name, { maxItems: 64, uniqueItems: true });
const VolumeRef = (description: string) => Type.String({ minLength: 1, maxLength: 128, description });

/** A volume as the API and CLI show it, with the placement decision that put it on its backend. */
export const VolumeSchema = Type.Object({
  id: IdString<VolumeId>(),
  name: Type.String(),
  tenantId: Type.String(),
  state: literals(VOLUME_STATES),
  stateReason: Nullable(Type.String()),
  sizeBytes: Bytes,
  format: literals(VOLUME_FORMATS),
  backendId: Nullable(IdString<BackendId>()),
  backendName: Nullable(Type.String()),
  placement: Nullable(PlacementSummarySchema),
  multiattach: Type.Boolean({ description: 'several hosts may attach it read-write at once' }),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
/** A volume. */
export type Volume = Static<typeof VolumeSchema>;

/** Body of POST /v1/volumes and of POST /v1/placements/dry-run. */
export const CreateVolumeBody = Type.Object({
  name: Name,
  sizeBytes: Type.Optional(Type.Integer({ minimum: 1, description: 'bytes; required unless cloning (a clone defaults to its source\'s size)' })),
  format: Type.Optional(literals(VOLUME_FORMATS)),
  backend: Type.Optional(VolumeRef('pin to this backend (name or id)')),
  requiredTags: Type.Optional(Tags),
  zone: Type.Optional(Name),
  policy: Type.Optional(literals(PLACEMENT_POLICIES)),
  class: Type.Optional(VolumeRef('storage class (name or id); absent = the default class, if any')),
  fromSnapshot: Type.Optional(VolumeRef('clone this snapshot (name or id), on its backend')),
  fromVolume: Type.Optional(VolumeRef('clone this volume (name or id): offloaded when its backend can, else copied on the host')),
  offload: Type.Optional(Type.Boolean({ description: 'false forces a host copy even where the backend could offload' })),
  multiattach: Type.Optional(Type.Boolean({ description: 'several hosts may attach it read-write at once (placed only on backends with the multiattach capability)' })),
}, { additionalProperties: false });
/** A create-volume request as sent. */
export type CreateVolumeRequest = Static<typeof CreateVolumeBody>;
/**
 * A create request as the service takes it: the request with its size settled, where 0 means "the
 * clone source's size" (see `createVolumeInput`).
 */
/** The create rules, re-exported beside the schema (they live in core/volume-requests, free of TypeBox for the CLI). */
export { isClone, sizeIsMissing };

export type CreateVolumeInput = Omit<CreateVolumeRequest, 'sizeBytes'> & { readonly sizeBytes: number };

/**
 * The service input of a create request, or VALIDATION_FAILED when it breaks the size rule. A clone
 * without a size gets 0, which the service reads as "the source's size".
 */
export function createVolumeInput(r: CreateVolumeRequest): CreateVolumeInput {
  if (sizeIsMissing(r)) {
    throw new StowageError('VALIDATION_FAILED', 'invalid body: sizeBytes is required (unless the volume is a clone: fromSnapshot or fromVolume)', { field: 'sizeBytes' });
  }
  return { ...r, sizeBytes: r.sizeBytes ?? 0 };
}

/** Answer of every volume mutation: the volume and the operation doing the work. */
export const VolumeWithOperation = Type.Object({ volume: VolumeSchema, operation: OperationSchema });
/** A volume and its operation. */
export type VolumeWithOperationT = Static<typeof VolumeWithOperation>;

/** Body of POST /v1/volumes/{ref}/resize. */
export const ResizeVolumeBody = Type.Object({ sizeBytes: Bytes }, { additionalProperties: false });

/** Query of GET /v1/volumes. */
export const VolumeListQuery = Type.Composite([ListQuery, AllTenants, Type.Object({
  backend: Type.Optional(Type.String({ maxLength: 128 })),
  state: Type.Optional(literals(VOLUME_STATES)),
})], { additionalProperties: false });
/** The filters of a volume list (the page aside). */
export type VolumeListFilter = Omit<Static<typeof VolumeListQuery>, 'limit' | 'cursor'>;
