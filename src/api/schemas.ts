import { Type, type Static } from '@sinclair/typebox';
import { BackendSchema, Bytes, CapabilitySchema, Name, OperationSchema, VolumeSchema, literals } from '../core/models.js';
import { BACKEND_ROLES, OPERATION_STATES, VOLUME_FORMATS, VOLUME_STATES } from '../core/states.js';

/** Request and response shapes of the REST API, shared with the CLI. */

export const RefParams = Type.Object({ ref: Type.String({ minLength: 1, maxLength: 128, description: 'name or id' }) });
export const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });

export const ListQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  cursor: Type.Optional(Type.String({ maxLength: 256 })),
}, { additionalProperties: false });

export const WaitQuery = Type.Object({
  wait: Type.Boolean({ default: false, description: 'wait for the operation to finish before answering' }),
  timeoutMs: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 600_000, description: 'longest wait, in ms' }),
}, { additionalProperties: false });
export type WaitQueryT = Static<typeof WaitQuery>;

export const Overrides = Type.Object({ add: Type.Array(CapabilitySchema, { default: [] }), remove: Type.Array(CapabilitySchema, { default: [] }) }, { additionalProperties: false });
const Tags = Type.Array(Name, { maxItems: 64, uniqueItems: true });

export const CreateBackendBody = Type.Object({
  name: Name,
  driver: Type.String({ minLength: 3, maxLength: 1024, description: 'driver URI; the scheme picks the driver (dir://, tgt://, btrfs://)' }),
  role: Type.Optional(literals(BACKEND_ROLES)),
  cost: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
  tags: Type.Optional(Tags),
  zone: Type.Optional(Name),
  overcommitRatio: Type.Optional(Type.Number({ minimum: 1, maximum: 100 })),
  reservedPercent: Type.Optional(Type.Number({ minimum: 0, exclusiveMaximum: 100 })),
  options: Type.Optional(Type.Record(Type.String({ pattern: '^[a-zA-Z][a-zA-Z0-9_.-]{0,63}$' }), Type.String({ maxLength: 1024 }))),
  capabilityOverrides: Type.Optional(Overrides),
  enabled: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
export type CreateBackendBodyT = Static<typeof CreateBackendBody>;

export const UpdateBackendBody = Type.Object({
  role: Type.Optional(literals(BACKEND_ROLES)),
  cost: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
  tags: Type.Optional(Tags),
  zone: Type.Optional(Type.Union([Name, Type.Literal('')])),
  overcommitRatio: Type.Optional(Type.Number({ minimum: 1, maximum: 100 })),
  reservedPercent: Type.Optional(Type.Number({ minimum: 0, exclusiveMaximum: 100 })),
  capabilityOverrides: Type.Optional(Overrides),
}, { additionalProperties: false, minProperties: 1 });
export type UpdateBackendBodyT = Static<typeof UpdateBackendBody>;

export const BackendWithOperation = Type.Object({ backend: BackendSchema, operation: Type.Union([OperationSchema, Type.Null()]) });

export const CreateVolumeBody = Type.Object({
  name: Name,
  sizeBytes: Type.Optional(Type.Integer({ minimum: 1, description: 'bytes; required unless cloning (a clone defaults to its source\'s size)' })),
  format: Type.Optional(literals(VOLUME_FORMATS)),
  backend: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'pin to this backend (name or id)' })),
  requiredTags: Type.Optional(Tags),
  zone: Type.Optional(Name),
  policy: Type.Optional(literals(['cheapest', 'spread', 'pack'] as const)),
  class: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'storage class (name or id); absent = the default class, if any' })),
  fromSnapshot: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'clone this snapshot (name or id), on its backend' })),
  fromVolume: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'clone this volume (name or id): offloaded when its backend can, else copied on the host' })),
  offload: Type.Optional(Type.Boolean({ description: 'false forces a host copy even where the backend could offload' })),
  multiattach: Type.Optional(Type.Boolean({ description: 'several hosts may attach it read-write at once (placed only on backends with the multiattach capability)' })),
}, { additionalProperties: false });
export type CreateVolumeBodyT = Static<typeof CreateVolumeBody>;

export const ResizeVolumeBody = Type.Object({ sizeBytes: Bytes }, { additionalProperties: false });

export const VolumeListQuery = Type.Composite([ListQuery, Type.Object({
  backend: Type.Optional(Type.String({ maxLength: 128 })),
  state: Type.Optional(literals(VOLUME_STATES)),
})], { additionalProperties: false });

export const VolumeWithOperation = Type.Object({ volume: VolumeSchema, operation: OperationSchema });

export const VerdictSchema = Type.Object({
  backend: Type.String(),
  passed: Type.Boolean(),
  filter: Type.Union([Type.String(), Type.Null()]),
  reason: Type.Union([Type.String(), Type.Null()]),
  usableBytes: Type.Integer(),
  cost: Type.Integer(),
  score: Type.Union([Type.Number(), Type.Null()]),
});
export const DryRunResponse = Type.Object({
  winner: Type.Union([Type.String(), Type.Null()]),
  reason: Type.String(),
  verdicts: Type.Array(VerdictSchema),
  summary: Type.Record(Type.String(), Type.Unknown()),
});

export const OperationListQuery = Type.Composite([ListQuery, Type.Object({
  state: Type.Optional(literals(OPERATION_STATES)),
  target: Type.Optional(Type.String({ maxLength: 128 })),
})], { additionalProperties: false });

export const EventListQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 50 }),
  cursor: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
  after: Type.Optional(Type.Integer({ minimum: 0, description: 'only events after this sequence number, oldest first (for following)' })),
  resource: Type.Optional(Type.String({ maxLength: 128, description: 'resource id' })),
  type: Type.Optional(Type.String({ maxLength: 32, description: 'resource type, e.g. volume' })),
}, { additionalProperties: false });
