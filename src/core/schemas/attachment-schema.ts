import { Type, type Static } from '@sinclair/typebox';
import type { VolumeId } from '../ids.js';
import { AllTenants, AccessModeSchema, IdString, Name, Nullable, PageQuery, Ref, RequestedAccessMode, literals } from '../models.js';
import { ATTACHMENT_STATES } from '../states.js';
import { ConnectionInfoSchema } from './access-schema.js';
import { OperationSchema } from './operation-schema.js';

/** A volume connected into an instance on a host, as the API and CLI show it. */
export const AttachmentSchema = Type.Object({
  id: Type.String(),
  tenantId: Type.String({ description: 'the tenant it belongs to' }),
  volumeId: IdString<VolumeId>(),
  volumeName: Type.String(),
  hostId: Type.String(),
  hostName: Type.String(),
  instance: Type.String(),
  mode: AccessModeSchema,
  state: literals(ATTACHMENT_STATES),
  stateReason: Nullable(Type.String()),
  deviceId: Nullable(Type.String()),
  migrationId: Nullable(Type.String()),
  reportedAt: Nullable(Type.String()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
/** An attachment. */
export type Attachment = Static<typeof AttachmentSchema>;

/** Body of POST /v1/volumes/{ref}/attachments. */
export const AttachBody = Type.Object({ host: Ref, instance: Name, mode: RequestedAccessMode }, { additionalProperties: false });
/** An attach request as sent (the volume is in the path). */
export type AttachBodyT = Static<typeof AttachBody>;
/** An attach request as the service takes it. */
export type AttachRequest = AttachBodyT & {
  readonly volume: string;
  /** Set by live migration: the destination side may coexist with the source's rw attachment. */
  readonly migrationId?: string;
};

/** Body of POST /v1/volumes/{ref}/detach: from one host, or (empty) everywhere. */
export const DetachVolumeBody = Type.Object({ host: Type.Optional(Ref) }, { additionalProperties: false });

/** Answer of an attach or of one detached attachment. */
export const AttachmentWithOperation = Type.Object({ attachment: AttachmentSchema, operation: OperationSchema });
/** An attachment and its operation. */
export type AttachmentWithOperationT = Static<typeof AttachmentWithOperation>;
/** Answer of a volume detach: one attachment and operation per host. */
export const AttachmentWithOperationList = Type.Object({ items: Type.Array(AttachmentWithOperation) });

/** Query of GET /v1/attachments. */
export const AttachmentListQuery = Type.Composite([PageQuery, AllTenants, Type.Object({
  volume: Type.Optional(Type.String({ maxLength: 128 })),
  host: Type.Optional(Type.String({ maxLength: 128 })),
  all: Type.Boolean({ default: false, description: 'include gone ones' }),
})], { additionalProperties: false });
/** The filters of an attachment list (the page aside). */
export type AttachmentListFilter = Omit<Static<typeof AttachmentListQuery>, 'limit' | 'cursor'>;

/** Body of POST /v1/hosts/{ref}/evacuate. */
export const EvacuateBody = Type.Object({ to: Ref }, { additionalProperties: false });

/** What an agent reports about its host on every heartbeat. */
export const AgentReportSchema = Type.Object({
  initiatorName: Type.Optional(Type.String({ maxLength: 223 })),
  addresses: Type.Array(Type.String({ maxLength: 45 }), { maxItems: 16 }),
  connectors: Type.Array(Type.String({ maxLength: 32 }), { maxItems: 16 }),
  instances: Type.Array(Name, { maxItems: 256 }),
  connected: Type.Array(Type.Object({ volumeId: Type.String({ maxLength: 64 }), instance: Name, deviceId: Type.String({ maxLength: 128 }) }), { maxItems: 1024 }),
}, { additionalProperties: false });
/** An agent's report. */
export type AgentReport = Static<typeof AgentReportSchema>;

/** Query of POST /v1/agents/{ref}/report: with waitMs, hold the answer until what is wanted changes. */
export const AgentReportQuery = Type.Object({ waitMs: Type.Integer({ minimum: 0, maximum: 60_000, default: 0 }) }, { additionalProperties: false });

/** What the control plane wants connected on a host: the agent converges to exactly this set. */
export const DesiredAttachmentSchema = Type.Object({
  attachmentId: Type.String(),
  volumeId: Type.String(),
  instance: Type.String(),
  mode: AccessModeSchema,
  connection: ConnectionInfoSchema,
});
/** One wanted attachment. */
export type DesiredAttachment = Static<typeof DesiredAttachmentSchema>;

/** The answer to an agent's report. */
export const AgentAnswerSchema = Type.Object({
  hostState: Type.String(),
  heartbeatIntervalMs: Type.Integer(),
  desired: Type.Array(DesiredAttachmentSchema),
});
/** An answer to an agent. */
export type AgentAnswer = Static<typeof AgentAnswerSchema>;
