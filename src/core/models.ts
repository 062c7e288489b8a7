import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { BackendId, VolumeId } from './ids.js';
import { NAME_PATTERN } from './names.js';
import {
  ACCESS_MODES, ATTACHMENT_STATES, BACKEND_KINDS, BACKEND_ROLES, BACKEND_STATES, GRANT_STATES, HOST_STATES, MIGRATION_STATES, OPERATION_STATES,
  SNAPSHOT_STATES, VOLUME_FORMATS, VOLUME_STATES,
} from './states.js';

/**
 * The resource shapes, written once: the API validates and serializes with them, OpenAPI is
 * generated from them, services and the CLI use their Static types.
 */
/** A string enum schema whose static type is the union of its values. */
export const literals = <const T extends readonly string[]>(values: T) => Type.Unsafe<T[number]>({ type: 'string', enum: [...values] });
const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()]);
/** A string on the wire whose static type is a branded id, so services hand out VolumeId, not string. */
const IdString = <T extends string>() => Type.Unsafe<T>(Type.String());

export const Name = Type.String({ pattern: NAME_PATTERN, minLength: 1, maxLength: 63, description: 'letters, digits, ".", "_" or "-"; starts with a letter or digit' });
export const Bytes = Type.Integer({ minimum: 0, description: 'bytes' });
export { CapabilitySchema } from './capabilities.js';

export const CapacitySchema = Type.Object({
  totalBytes: Bytes,
  freeBytes: Bytes,
  usedBytes: Bytes,
  provisionedBytes: Bytes,
  claimedBytes: Bytes,
  usableBytes: Type.Integer({ description: 'what placement may still promise: total × overcommit − provisioned − claimed − reserve' }),
});

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
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
export type Backend = Static<typeof BackendSchema>;

export const PlacementSummarySchema = Type.Object({
  policy: Type.String(),
  className: Nullable(Type.String()),
  candidates: Type.Integer(),
  rejected: Type.Record(Type.String(), Type.Integer(), { description: 'number of backends each filter rejected' }),
  top: Type.Array(Type.Object({ backend: Type.String(), score: Type.Number(), usableBytes: Type.Integer(), cost: Type.Integer() })),
  winner: Nullable(Type.String()),
  pinned: Type.Boolean(),
  attempts: Type.Array(Type.Object({ backend: Type.String(), ok: Type.Boolean(), error: Nullable(Type.String()) })),
  reason: Type.String({ description: 'one sentence an operator understands' }),
});
export type PlacementSummary = Static<typeof PlacementSummarySchema>;

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
export type Volume = Static<typeof VolumeSchema>;

export const ErrorBodySchema = Type.Object({
  code: Type.String(),
  message: Type.String(),
  details: Type.Record(Type.String(), Type.Unknown()),
}, { $id: 'Error', description: 'every error: a stable code, a sentence saying what to do, and structured details' });
export type ErrorBody = Static<typeof ErrorBodySchema>;

export const OperationSchema = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  targetType: Type.String(),
  targetId: Type.String(),
  state: literals(OPERATION_STATES),
  step: Nullable(Type.String()),
  stepsDone: Type.Array(Type.Object({ name: Type.String(), at: Type.String(), note: Type.Optional(Type.String()) })),
  attempts: Type.Integer(),
  progress: Nullable(Type.Number()),
  result: Nullable(Type.Record(Type.String(), Type.Unknown())),
  error: Nullable(ErrorBodySchema),
  actor: Type.String(),
  idempotencyKey: Nullable(Type.String()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  finishedAt: Nullable(Type.String()),
});
export type Operation = Static<typeof OperationSchema>;

export const EventSchema = Type.Object({
  seq: Type.Integer(),
  id: Type.String(),
  at: Type.String(),
  actor: Type.String(),
  resourceType: Type.String(),
  resourceId: Type.String(),
  resourceName: Nullable(Type.String()),
  action: Type.String(),
  fromState: Nullable(Type.String()),
  toState: Nullable(Type.String()),
  message: Type.String(),
  details: Type.Record(Type.String(), Type.Unknown()),
  operationId: Nullable(Type.String()),
});
export type StowageEvent = Static<typeof EventSchema>;

/** A page of results with the cursor for the next page (null at the end). */
export const Page = <T extends TSchema>(item: T) => Type.Object({ items: Type.Array(item), nextCursor: Nullable(Type.String()) });
export type PageOf<T> = { items: T[]; nextCursor: string | null };

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
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
export type Host = Static<typeof HostSchema>;

/** How a host reaches a volume. `chapSecret` appears only in the answer to the grant itself and the connection endpoint. */
export const ConnectionInfoSchema = Type.Object({
  protocol: literals(['iscsi', 'file', 'nfs'] as const),
  portal: Type.Optional(Type.String()),
  iqn: Type.Optional(Type.String()),
  lun: Type.Optional(Type.Integer()),
  path: Type.Optional(Type.String()),
  chapUser: Type.Optional(Type.String()),
  chapSecret: Type.Optional(Type.String()),
  mode: literals(ACCESS_MODES),
});
export type ConnectionInfoModel = Static<typeof ConnectionInfoSchema>;

export const GrantSchema = Type.Object({
  id: Type.String(),
  volumeId: IdString<VolumeId>(),
  volumeName: Type.String(),
  hostId: Type.String(),
  hostName: Type.String(),
  mode: literals(ACCESS_MODES),
  state: literals(GRANT_STATES),
  stateReason: Nullable(Type.String()),
  connection: Nullable(ConnectionInfoSchema),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
export type Grant = Static<typeof GrantSchema>;

export const SnapshotSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  volumeId: IdString<VolumeId>(),
  volumeName: Nullable(Type.String()),
  backendId: IdString<BackendId>(),
  state: literals(SNAPSHOT_STATES),
  stateReason: Nullable(Type.String()),
  sizeBytes: Bytes,
  method: Nullable(Type.String({ description: 'how the backend made it: btrfs-snapshot, reflink, qcow2-backing, copy' })),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
export type Snapshot = Static<typeof SnapshotSchema>;

export const AttachmentSchema = Type.Object({
  id: Type.String(),
  volumeId: IdString<VolumeId>(),
  volumeName: Type.String(),
  hostId: Type.String(),
  hostName: Type.String(),
  instance: Type.String(),
  mode: literals(ACCESS_MODES),
  state: literals(ATTACHMENT_STATES),
  stateReason: Nullable(Type.String()),
  deviceId: Nullable(Type.String()),
  migrationId: Nullable(Type.String()),
  reportedAt: Nullable(Type.String()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
export type Attachment = Static<typeof AttachmentSchema>;

export const MigrationSchema = Type.Object({
  id: Type.String(),
  instance: Type.String(),
  fromHost: Type.String(),
  toHost: Type.String(),
  state: literals(MIGRATION_STATES),
  stateReason: Nullable(Type.String()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
export type Migration = Static<typeof MigrationSchema>;

/** What an agent reports about its host on every heartbeat. */
export const AgentReportSchema = Type.Object({
  initiatorName: Type.Optional(Type.String({ maxLength: 223 })),
  addresses: Type.Array(Type.String({ maxLength: 45 }), { maxItems: 16 }),
  connectors: Type.Array(Type.String({ maxLength: 32 }), { maxItems: 16 }),
  instances: Type.Array(Name, { maxItems: 256 }),
  connected: Type.Array(Type.Object({ volumeId: Type.String({ maxLength: 64 }), instance: Name, deviceId: Type.String({ maxLength: 128 }) }), { maxItems: 1024 }),
}, { additionalProperties: false });
export type AgentReport = Static<typeof AgentReportSchema>;

/** What the control plane wants connected on a host: the agent converges to exactly this set. */
export const DesiredAttachmentSchema = Type.Object({
  attachmentId: Type.String(),
  volumeId: Type.String(),
  instance: Type.String(),
  mode: literals(ACCESS_MODES),
  connection: ConnectionInfoSchema,
});
export type DesiredAttachment = Static<typeof DesiredAttachmentSchema>;

export const AgentAnswerSchema = Type.Object({
  hostState: Type.String(),
  heartbeatIntervalMs: Type.Integer(),
  desired: Type.Array(DesiredAttachmentSchema),
});
export type AgentAnswer = Static<typeof AgentAnswerSchema>;
