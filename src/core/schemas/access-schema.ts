import { Type, type Static } from '@sinclair/typebox';
import type { VolumeId } from '../ids.js';
import { AccessModeSchema, IdString, Nullable, Ref, RequestedAccessMode, literals } from '../models.js';
import { GRANT_STATES } from '../states.js';
import { OperationSchema } from './operation-schema.js';

/** How a host reaches a volume. `chapSecret` appears only in the answer to the grant itself and the connection endpoint. */
export const ConnectionInfoSchema = Type.Object({
  protocol: literals(['iscsi', 'file', 'nfs'] as const),
  portal: Type.Optional(Type.String()),
  iqn: Type.Optional(Type.String()),
  lun: Type.Optional(Type.Integer()),
  path: Type.Optional(Type.String()),
  chapUser: Type.Optional(Type.String()),
  chapSecret: Type.Optional(Type.String()),
  mode: AccessModeSchema,
});
/** Connection info of a grant. */
export type ConnectionInfoModel = Static<typeof ConnectionInfoSchema>;

/** A host's access to a volume on its backend, as the API and CLI show it (no secret). */
export const GrantSchema = Type.Object({
  id: Type.String(),
  volumeId: IdString<VolumeId>(),
  volumeName: Type.String(),
  hostId: Type.String(),
  hostName: Type.String(),
  mode: AccessModeSchema,
  state: literals(GRANT_STATES),
  stateReason: Nullable(Type.String()),
  connection: Nullable(ConnectionInfoSchema),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
/** A grant. */
export type Grant = Static<typeof GrantSchema>;

/** Body of POST /v1/volumes/{ref}/grants. */
export const GrantBody = Type.Object({ host: Ref, mode: RequestedAccessMode }, { additionalProperties: false });
/** A grant request. */
export type GrantRequest = Static<typeof GrantBody>;

/** Path of one grant: /v1/volumes/{ref}/grants/{host}. */
export const GrantParams = Type.Object({ ref: Ref, host: Ref });

/** Answer of a grant: the grant, its operation, and the connection info (CHAP secret included) once active. */
export const GrantAnswer = Type.Object({ grant: GrantSchema, operation: OperationSchema, connection: Type.Union([ConnectionInfoSchema, Type.Null()], { description: 'with the CHAP secret, once the grant is active' }) });
/** A grant answer. */
export type GrantAnswerT = Static<typeof GrantAnswer>;

/** Answer of a revoke: the grant and the operation revoking it. */
export const RevokeAnswer = Type.Object({ grant: GrantSchema, operation: OperationSchema });
/** A revoke answer. */
export type RevokeAnswerT = Static<typeof RevokeAnswer>;

/** Answer of GET /v1/volumes/{ref}/grants: all of them, on one page. */
export const GrantList = Type.Object({ items: Type.Array(GrantSchema), nextCursor: Type.Null() });
