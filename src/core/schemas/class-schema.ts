import { Type, type Static } from '@sinclair/typebox';
import { CapabilitySchema } from './capability-schema.js';
import { Name, TenantRestriction, TenantRestrictionBody, literals } from '../models.js';
import { BACKEND_KINDS } from '../states.js';
import { PLACEMENT_POLICIES } from './placement-schema.js';

const Tags = Type.Array(Name, { maxItems: 64, uniqueItems: true });
const Capabilities = Type.Array(CapabilitySchema, { maxItems: 32, uniqueItems: true });
const Description = Type.String({ maxLength: 1024 });

/** A storage class as the API and CLI show it. */
export const StorageClassSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.String(),
  kind: literals(BACKEND_KINDS),
  zone: Type.Union([Type.String(), Type.Null()]),
  requiredTags: Type.Array(Type.String()),
  forbiddenTags: Type.Array(Type.String()),
  requiredCapabilities: Type.Array(Type.String()),
  policy: literals(PLACEMENT_POLICIES),
  isDefault: Type.Boolean({ description: 'used when a request names no class' }),
  offload: Type.Boolean({ description: 'false: clones are copied on the host even where the backend could offload' }),
  volumeCount: Type.Integer({ description: 'live volumes created with this class' }),
  tenants: TenantRestriction,
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
/** A storage class. */
export type StorageClass = Static<typeof StorageClassSchema>;

/** Body of POST /v1/classes. */
export const CreateClassBody = Type.Object({
  name: Name,
  description: Type.Optional(Description),
  kind: Type.Optional(literals(BACKEND_KINDS)),
  zone: Type.Optional(Name),
  requiredTags: Type.Optional(Tags),
  forbiddenTags: Type.Optional(Tags),
  requiredCapabilities: Type.Optional(Capabilities),
  policy: Type.Optional(literals(PLACEMENT_POLICIES)),
  default: Type.Optional(Type.Boolean({ description: 'make this the default class (the previous default stops being one)' })),
  offload: Type.Optional(Type.Boolean({ description: 'false: clones are copied on the host (default true)' })),
  tenants: Type.Optional(TenantRestrictionBody),
}, { additionalProperties: false });
/** A create-class request. */
export type CreateClassInput = Static<typeof CreateClassBody>;

/** Body of PATCH /v1/classes/{ref}; `zone: null` (or "") clears the zone. */
export const UpdateClassBody = Type.Object({
  description: Type.Optional(Description),
  kind: Type.Optional(literals(BACKEND_KINDS)),
  zone: Type.Optional(Type.Union([Name, Type.Literal(''), Type.Null()])),
  requiredTags: Type.Optional(Tags),
  forbiddenTags: Type.Optional(Tags),
  requiredCapabilities: Type.Optional(Capabilities),
  policy: Type.Optional(literals(PLACEMENT_POLICIES)),
  default: Type.Optional(Type.Boolean()),
  offload: Type.Optional(Type.Boolean()),
  tenants: Type.Optional(TenantRestrictionBody),
}, { additionalProperties: false, minProperties: 1 });
/** An update-class request. */
export type UpdateClassInput = Static<typeof UpdateClassBody>;
