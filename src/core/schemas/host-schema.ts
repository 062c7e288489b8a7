import { Type, type Static } from '@sinclair/typebox';
import { Name, Nullable, TenantRestriction, TenantRestrictionBody, literals } from '../models.js';
import { INITIATOR_NAME_PATTERN } from '../names.js';
import { HOST_STATES } from '../states.js';

const Addresses = Type.Array(Type.String({ minLength: 2, maxLength: 45, description: 'IPv4 or IPv6 address' }), { maxItems: 16, uniqueItems: true });
const Initiator = Type.String({ pattern: INITIATOR_NAME_PATTERN, maxLength: 223, description: 'iSCSI initiator name, e.g. iqn.2024-01.com.example:host-a' });

/** A host (a hypervisor) as the API and CLI show it. */
export const HostSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  initiatorName: Nullable(Type.String()),
  addresses: Type.Array(Type.String()),
  zone: Type.String(),
  state: literals(HOST_STATES),
  connectors: Type.Array(Type.String()),
  instances: Type.Array(Type.String()),
  agentHeartbeatAt: Nullable(Type.String()),
  tenants: TenantRestriction,
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
/** A host. */
export type Host = Static<typeof HostSchema>;

/** Body of POST /v1/hosts. */
export const CreateHostBody = Type.Object({ name: Name, initiatorName: Type.Optional(Initiator), addresses: Type.Optional(Addresses), zone: Type.Optional(Name), tenants: Type.Optional(TenantRestrictionBody) }, { additionalProperties: false });
/** A register-host request. */
export type CreateHostInput = Static<typeof CreateHostBody>;

/** Body of PATCH /v1/hosts/{ref}: `initiatorName: null` clears it, `zone: ""` clears it. */
export const UpdateHostBody = Type.Object({ initiatorName: Type.Optional(Nullable(Initiator)), addresses: Type.Optional(Addresses), zone: Type.Optional(Type.Union([Name, Type.Literal('')])), tenants: Type.Optional(TenantRestrictionBody) }, { additionalProperties: false, minProperties: 1 });
/** An update-host request. */
export type UpdateHostInput = Static<typeof UpdateHostBody>;
