import { Type, type Static } from '@sinclair/typebox';
import { Name, Nullable, PageQuery, Ref, literals } from '../models.js';
import { USER_ROLES, type UserRole } from '../permissions.js';

const Description = Type.String({ maxLength: 1024 });

/** The roles, re-exported beside the schemas that name them (the list is in core/permissions, free of TypeBox for the CLI). */
export { USER_ROLES, type UserRole };
/** A person, or a service account for automation (same rights; shown apart, never logs in interactively). */
export const USER_KINDS = ['user', 'service'] as const;
export type UserKind = (typeof USER_KINDS)[number];

/** What a tenant owns, by kind (the counts a delete without cascade refuses on). */
export const TenantUsageSchema = Type.Object({
  users: Type.Integer(),
  volumes: Type.Integer(),
  snapshots: Type.Integer(),
  grants: Type.Integer(),
  attachments: Type.Integer(),
});
export type TenantUsage = Static<typeof TenantUsageSchema>;

/** A tenant as the API and CLI show it. */
export const TenantSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.String(),
  usage: TenantUsageSchema,
  deletingAt: Nullable(Type.String({ description: 'when a cascading delete was submitted (the tenant takes nothing new and its tokens are revoked); null in use' })),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
export type Tenant = Static<typeof TenantSchema>;

/** Body of POST /v1/tenants. */
export const CreateTenantBody = Type.Object({ name: Name, description: Type.Optional(Description) }, { additionalProperties: false });
export type CreateTenantInput = Static<typeof CreateTenantBody>;

/** Body of PATCH /v1/tenants/{ref}. */
export const UpdateTenantBody = Type.Object({ description: Type.Optional(Description) }, { additionalProperties: false, minProperties: 1 });
export type UpdateTenantInput = Static<typeof UpdateTenantBody>;

/** Query of DELETE /v1/tenants/{ref} (the route adds `wait` and `timeoutMs`). */
export const DeleteTenantQuery = Type.Object({
  cascade: Type.Optional(Type.Boolean({ description: 'also delete everything the tenant owns, as one durable operation (202 with the operation)' })),
}, { additionalProperties: false });

/** A user as the API and CLI show it. */
export const UserSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  tenant: Nullable(Type.String({ description: 'tenant name; null for a system admin' })),
  tenantId: Nullable(Type.String()),
  role: literals(USER_ROLES),
  kind: literals(USER_KINDS),
  description: Type.String(),
  tokens: Type.Integer({ description: 'live (unrevoked, unexpired) tokens' }),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
export type User = Static<typeof UserSchema>;

/** Body of POST /v1/users. */
export const CreateUserBody = Type.Object({
  name: Name,
  tenant: Type.Optional(Ref),
  role: literals(USER_ROLES),
  kind: Type.Optional(literals(USER_KINDS)),
  description: Type.Optional(Description),
}, { additionalProperties: false });
export type CreateUserInput = Static<typeof CreateUserBody>;

/** Body of PATCH /v1/users/{ref}. */
export const UpdateUserBody = Type.Object({
  role: Type.Optional(literals(USER_ROLES)),
  description: Type.Optional(Description),
}, { additionalProperties: false, minProperties: 1 });
export type UpdateUserInput = Static<typeof UpdateUserBody>;

/** Query of GET /v1/users. */
export const UserListQuery = Type.Composite([PageQuery, Type.Object({ tenant: Type.Optional(Ref) })], { additionalProperties: false });
export type UserListFilter = Static<typeof UserListQuery>;

/** An API token as the API and CLI show it (never its secret, which exists only in the create answer). */
export const TokenSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  user: Nullable(Type.String()),
  role: Type.String({ description: 'what the token may do: its scope, else its user\'s role' }),
  scope: Nullable(Type.String()),
  state: literals(['active', 'expired', 'revoked'] as const),
  expiresAt: Nullable(Type.String()),
  revokedAt: Nullable(Type.String()),
  lastUsedAt: Nullable(Type.String()),
  createdAt: Type.String(),
});
export type Token = Static<typeof TokenSchema>;

/** The longest a token may live: a year. */
export const MAX_TOKEN_TTL_SECONDS = 366 * 24 * 3600;

/** Body of POST /v1/tokens. */
export const CreateTokenBody = Type.Object({
  name: Name,
  user: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'an admin may make a token for another user (a service account); default: yourself' })),
  expiresInSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: MAX_TOKEN_TTL_SECONDS, description: 'default: never expires' })),
  scope: Type.Optional(literals(USER_ROLES, { description: 'narrow the token to a lesser role than its user\'s' })),
}, { additionalProperties: false });
export type CreateTokenInput = Static<typeof CreateTokenBody>;

/** Answer of POST /v1/tokens: the token, and its secret, shown this once. */
export const CreatedTokenSchema = Type.Object({ token: TokenSchema, secret: Type.String({ description: 'shown once; only its hash is kept' }) });
export type CreatedToken = Static<typeof CreatedTokenSchema>;

/** Query of GET /v1/tokens. */
export const TokenListQuery = Type.Object({ user: Type.Optional(Ref) }, { additionalProperties: false });

/** Answer of GET /v1/whoami. */
export const WhoamiSchema = Type.Object({
  user: Nullable(Type.String()),
  kind: Nullable(literals(USER_KINDS)),
  tenant: Type.String(),
  tenantId: Type.String(),
  role: Type.String(),
  token: Type.Object({ id: Type.String(), name: Type.String(), expiresAt: Nullable(Type.String()) }),
});
export type Whoami = Static<typeof WhoamiSchema>;
