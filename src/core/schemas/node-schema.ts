import { Type, type Static } from '@sinclair/typebox';
import { Name, Nullable, literals } from '../models.js';
import { NODE_ADMIN_STATES, NODE_STATES } from '../states.js';

/** host:port, or a bare host (the default node port is added). */
const NodeAddress = Type.String({ minLength: 1, maxLength: 261, pattern: '^[A-Za-z0-9.:\\[\\]-]+$', description: 'host or IP the control plane calls, with an optional :port (default 8751)' });

/** A storage node as the API and CLI show it. */
export const NodeSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  address: Type.String({ description: 'host:port the control plane calls' }),
  state: literals(NODE_STATES),
  stateReason: Nullable(Type.String()),
  adminState: literals(NODE_ADMIN_STATES),
  version: Nullable(Type.String()),
  epoch: Type.Integer(),
  lastHeartbeatAt: Nullable(Type.String()),
  clockSkewMs: Nullable(Type.Integer({ description: 'node clock minus control-plane clock, ms' })),
  unreachableSince: Nullable(Type.String()),
  keyFingerprint: Nullable(Type.String({ description: 'sha256 of the certificate pinned at enrollment' })),
  keyExpiresAt: Nullable(Type.String()),
  enrollmentExpiresAt: Nullable(Type.String({ description: 'while an enrollment token is outstanding' })),
  backends: Type.Array(Type.String(), { description: 'names of the backends whose drivers run on it' }),
  inFlight: Nullable(Type.Integer({ minimum: 0, description: 'calls and data streams the node was running at its last heartbeat; null when not known (silent node, or heartbeats seen by another replica)' })),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
/** A storage node. */
export type NodeInfo = Static<typeof NodeSchema>;

/** Body of POST /v1/nodes. */
export const CreateNodeBody = Type.Object({
  name: Name,
  address: NodeAddress,
  enrollTtlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 7 * 24 * 3600, description: 'how long the enrollment token is valid (default 3600)' })),
}, { additionalProperties: false });
/** A create-node request. */
export type CreateNodeInput = Static<typeof CreateNodeBody>;

/** Answer of POST /v1/nodes and POST /v1/nodes/{ref}/rekey: the node and its one-time enrollment token (shown once). */
export const NodeEnrollmentSchema = Type.Object({
  node: NodeSchema,
  enrollToken: Type.String({ description: 'single use; give it to `stowage node run --enroll`' }),
  enrollExpiresAt: Type.String(),
});
export type NodeEnrollment = Static<typeof NodeEnrollmentSchema>;

/** Body of POST /v1/nodes/{name}/enroll (sent by `stowage node run --enroll`, authenticated by the token alone). */
export const EnrollNodeBody = Type.Object({
  token: Type.String({ minLength: 16, maxLength: 512 }),
  certPem: Type.String({ minLength: 100, maxLength: 16384, description: "the node's self-signed certificate, to be pinned" }),
}, { additionalProperties: false });
export type EnrollNodeInput = Static<typeof EnrollNodeBody>;

/** Answer of the enroll route: what the node pins. */
export const NodeEnrolledSchema = Type.Object({
  node: Type.String(),
  controlPlaneCertPem: Type.String({ description: 'the only client certificate the node will accept' }),
});
export type NodeEnrolled = Static<typeof NodeEnrolledSchema>;
