import { Type, type Static } from '@sinclair/typebox';
import { CapabilitySchema } from './capability-schema.js';
import type { BackendId } from '../ids.js';
import { Bytes, IdString, Name, Nullable, TenantRestriction, TenantRestrictionBody, literals } from '../models.js';
import { BACKEND_KINDS, BACKEND_ROLES, BACKEND_STATES } from '../states.js';
import { OperationSchema } from './operation-schema.js';

const Tags = Type.Array(Name, { maxItems: 64, uniqueItems: true });
const Cost = Type.Integer({ minimum: 0, maximum: 1_000_000 });
const Overcommit = Type.Number({ minimum: 1, maximum: 100 });
const Reserve = Type.Number({ minimum: 0, exclusiveMaximum: 100 });

/** What a backend has and what placement may still promise on it, in bytes. */
export const CapacitySchema = Type.Object({
  totalBytes: Bytes,
  freeBytes: Bytes,
  usedBytes: Bytes,
  provisionedBytes: Bytes,
  claimedBytes: Bytes,
  usableBytes: Type.Integer({ description: 'what placement may still promise: total × overcommit − provisioned − claimed − reserve' }),
});

/** A backend as the API and CLI show it. */
export const BackendSchema = Type.Object({
  id: IdString<BackendId>(),
  name: Type.String(),
  tenantId: Type.String(),
  driver: Type.String({ description: 'driver URI, e.g. dir:///srv/volumes' }),
  kind: literals(BACKEND_KINDS),
  role: literals(BACKEND_ROLES),
  state: literals(BACKEND_STATES),
  stateReason: Nullable(Type.String()),
  cost: Type.Integer({ description: 'cost units per GiB-month' }),
  tags: Type.Array(Type.String()),
  zone: Type.String(),
  overcommitRatio: Type.Number(),
  reservedPercent: Type.Number(),
  options: Type.Record(Type.String(), Type.String()),
  capabilities: Type.Array(Type.String(), { description: 'reported by the probe, plus admin overrides' }),
  capabilitiesReported: Type.Array(Type.String()),
  capabilityOverrides: Type.Object({ add: Type.Array(Type.String()), remove: Type.Array(Type.String()) }),
  capacity: CapacitySchema,
  volumeCount: Type.Integer(),
  lastProbeAt: Nullable(Type.String()),
  node: Nullable(Type.String({ description: 'the storage node its driver runs on; null: in the control plane' })),
  tenants: TenantRestriction,
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
/** A backend. */
export type Backend = Static<typeof BackendSchema>;

/** Capabilities an admin adds to or removes from what the probe reports. */
export const Overrides = Type.Object({ add: Type.Array(CapabilitySchema, { default: [] }), remove: Type.Array(CapabilitySchema, { default: [] }) }, { additionalProperties: false });

/** Body of POST /v1/backends. */
export const CreateBackendBody = Type.Object({
  name: Name,
  driver: Type.String({ minLength: 3, maxLength: 1024, description: 'driver URI; the scheme picks the driver (dir://, tgt://, btrfs://)' }),
  role: Type.Optional(literals(BACKEND_ROLES)),
  cost: Type.Optional(Cost),
  tags: Type.Optional(Tags),
  zone: Type.Optional(Name),
  overcommitRatio: Type.Optional(Overcommit),
  reservedPercent: Type.Optional(Reserve),
  options: Type.Optional(Type.Record(Type.String({ pattern: '^[a-zA-Z][a-zA-Z0-9_.-]{0,63}$' }), Type.String({ maxLength: 1024 }))),
  capabilityOverrides: Type.Optional(Overrides),
  enabled: Type.Optional(Type.Boolean()),
  node: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'name of the storage node its driver runs on (default: the control plane itself)' })),
  tenants: Type.Optional(TenantRestrictionBody),
}, { additionalProperties: false });
/** A register-backend request. */
export type CreateBackendInput = Static<typeof CreateBackendBody>;

/** Body of PATCH /v1/backends/{ref}; `zone: ""` clears the zone. The driver URI is fixed: volumes live behind it. */
export const UpdateBackendBody = Type.Object({
  role: Type.Optional(literals(BACKEND_ROLES)),
  cost: Type.Optional(Cost),
  tags: Type.Optional(Tags),
  zone: Type.Optional(Type.Union([Name, Type.Literal('')])),
  overcommitRatio: Type.Optional(Overcommit),
  reservedPercent: Type.Optional(Reserve),
  capabilityOverrides: Type.Optional(Overrides),
  tenants: Type.Optional(TenantRestrictionBody),
}, { additionalProperties: false, minProperties: 1 });
/** An update-backend request. */
export type UpdateBackendInput = Static<typeof UpdateBackendBody>;

/** Answer of POST /v1/backends: the backend and its (already finished) registration operation. */
export const BackendWithOperation = Type.Object({ backend: BackendSchema, operation: Nullable(OperationSchema) });
/** A backend and its registration operation. */
export type BackendWithOperationT = Static<typeof BackendWithOperation>;
