import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';
import type {
  AccessMode, AttachmentState, BackendAdminState, BackendKind, BackendRole, BackendState, ClaimState, GrantState, HostState,
  MigrationState, NodeAdminState, NodeState, OperationState, SnapshotState, VolumeFormat, VolumeState,
} from '../core/states.js';
import type { BackendId, VolumeId } from '../core/ids.js';

/**
 * The store schema, one interface per table. Timestamps are ISO-8601 text (sortable on both
 * dialects); JSON columns are text written and read by the repositories; sizes are bigint bytes.
 * State, mode and kind columns carry the unions of `core/states.ts`, whose tables say what each state means.
 */
export interface Database {
  tenants: TenantTable;
  users: UserTable;
  api_tokens: ApiTokenTable;
  backends: BackendTable;
  volumes: VolumeTable;
  operations: OperationTable;
  events: EventTable;
  classes: ClassTable;
  claims: ClaimTable;
  hosts: HostTable;
  grants: GrantTable;
  snapshots: SnapshotTable;
  attachments: AttachmentTable;
  migrations: MigrationTable;
  idempotency_keys: IdempotencyKeyTable;
  nodes: NodeTable;
  control_identities: ControlIdentityTable;
  quotas: QuotaTable;
  retention_sweeps: RetentionSweepTable;
  placement_catalog: PlacementCatalogTable;
}

type Json = string;
type Timestamp = string;

export interface TenantTable {
  id: string;
  name: string;
  description: ColumnType<string, string | undefined, string>;
  created_at: Timestamp;
  updated_at: ColumnType<Timestamp | null, Timestamp | null | undefined, Timestamp | null>;
  /** When a cascading delete was submitted (the tenant takes nothing new from then on); null in use. */
  deleting_at: ColumnType<Timestamp | null, Timestamp | null | undefined, Timestamp | null>;
}

/** A user of one tenant, or a system admin of none; a person (`user`) or a service account (`service`). */
export interface UserTable {
  id: string;
  tenant_id: string | null;
  /** Unique across the system (a login name). */
  name: string;
  role: string;
  kind: string;
  description: ColumnType<string, string | undefined, string>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface ApiTokenTable {
  id: string;
  tenant_id: string;
  name: string;
  /** sha256 of the token; the token itself is never stored. */
  token_hash: string;
  role: string;
  created_at: Timestamp;
  last_used_at: Timestamp | null;
  /** For an agent's token (role `agent`): the one host it may report for. Optional on insert. */
  host_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** The user the token belongs to; null for an agent's token and tokens made before users existed. */
  user_id: ColumnType<string | null, string | null | undefined, string | null>;
  expires_at: ColumnType<Timestamp | null, Timestamp | null | undefined, Timestamp | null>;
  revoked_at: ColumnType<Timestamp | null, Timestamp | null | undefined, Timestamp | null>;
  /** A role no higher than the user's that narrows this token; null: the user's role. */
  scope: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface BackendTable {
  id: BackendId;
  tenant_id: string;
  name: string;
  driver_uri: string;
  kind: BackendKind;
  role: BackendRole;
  state: BackendState;
  state_reason: string | null;
  /** Administrative intent: enabled or disabled. `state` adds offline/error from probes. */
  admin_state: BackendAdminState;
  cost: number;
  tags: Json;
  zone: string;
  overcommit_ratio: number;
  reserved_percent: number;
  options: Json;
  capabilities_reported: Json;
  capabilities_overrides: Json;
  total_bytes: number;
  free_bytes: number;
  used_bytes: number;
  last_probe_at: Timestamp | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  /** The storage node its driver runs on; null: in the control plane. Optional on insert. */
  node_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** Tenant ids (JSON array) it is restricted to; null: shared with every tenant. Optional on insert. */
  tenants: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface VolumeTable {
  id: VolumeId;
  tenant_id: string;
  name: string;
  backend_id: BackendId | null;
  state: VolumeState;
  state_reason: string | null;
  size_bytes: number;
  format: VolumeFormat;
  driver_handle: Json | null;
  placement: Json | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  deleted_at: Timestamp | null;
  /** The storage class the volume was placed with (null: none). Optional on insert. */
  class_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** 1 when several hosts may attach it read-write at once. Optional on insert. */
  multiattach: ColumnType<number, number | undefined, number>;
}

export interface OperationTable {
  id: string;
  tenant_id: string;
  kind: string;
  target_type: string;
  target_id: string;
  state: OperationState;
  step: string | null;
  steps_done: Json;
  attempts: number;
  input: Json;
  result: Json | null;
  error: Json | null;
  actor: string;
  idempotency_key: string | null;
  progress: number | null;
  lease_owner: string | null;
  lease_expires_at: Timestamp | null;
  /** Fencing token: incremented on every claim; a worker's writes count only while it is still this. Optional on insert. */
  lease_epoch: ColumnType<number, number | undefined, number>;
  /** Not to be claimed before this (an operation waiting for a node). Optional on insert. */
  not_before: ColumnType<Timestamp | null, Timestamp | null | undefined, Timestamp | null>;
  /** Why it waits ("waiting for node sn1: unreachable since …"), shown with the operation. Optional on insert. */
  waiting_reason: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: Timestamp;
  updated_at: Timestamp;
  finished_at: Timestamp | null;
}

export interface EventTable {
  seq: Generated<number>;
  id: string;
  tenant_id: string;
  at: Timestamp;
  actor: string;
  resource_type: string;
  resource_id: string;
  resource_name: string | null;
  action: string;
  from_state: string | null;
  to_state: string | null;
  message: string;
  details: Json;
  operation_id: string | null;
}

/** A storage class: placement constraints and policy (Cinder volume type). */
export interface ClassTable {
  id: string;
  name: string;
  description: string;
  kind: BackendKind;
  zone: string | null;
  required_tags: Json;
  forbidden_tags: Json;
  required_capabilities: Json;
  policy: string;
  /** 1 for the one default class, else 0. */
  is_default: number;
  /** 0 when clones of this class must be copied on the host even where the backend could offload. Optional on insert. */
  offload: ColumnType<number, number | undefined, number>;
  /** Tenant ids (JSON array) it is restricted to; null: shared with every tenant. Optional on insert. */
  tenants: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** Capacity promised on a backend: held while an operation runs, then committed or released. */
export interface ClaimTable {
  id: string;
  backend_id: BackendId;
  resource_type: string;
  resource_id: string;
  operation_id: string | null;
  bytes: number;
  state: ClaimState;
  expires_at: Timestamp;
  created_at: Timestamp;
}

/** What the last retention sweep did: one row (id `last`), upserted by every sweep. */
export interface RetentionSweepTable {
  id: string;
  at: Timestamp;
  operations_pruned: number;
  events_pruned: number;
  operations_archived: number;
  events_archived: number;
  /** 1 when the sweep got through every row past the cutoff, 0 when it was stopped first. */
  complete: number;
}

export type BackendRow = Selectable<BackendTable>;
export type NewBackendRow = Insertable<BackendTable>;
export type BackendUpdate = Updateable<BackendTable>;
export type VolumeRow = Selectable<VolumeTable>;
export type NewVolumeRow = Insertable<VolumeTable>;
export type OperationRow = Selectable<OperationTable>;
export type NewOperationRow = Insertable<OperationTable>;
export type EventRow = Selectable<EventTable>;
export type NewEventRow = Insertable<EventTable>;
export type TenantRow = Selectable<TenantTable>;
export type ApiTokenRow = Selectable<ApiTokenTable>;
export type UserRow = Selectable<UserTable>;
export type ClassRow = Selectable<ClassTable>;
export type NewClassRow = Insertable<ClassTable>;
export type ClassUpdate = Updateable<ClassTable>;
export type ClaimRow = Selectable<ClaimTable>;
export type NewClaimRow = Insertable<ClaimTable>;
/** Unused marker so ColumnType stays available for later tables. */
export type _Column = ColumnType<string>;

export interface HostTable {
  id: string;
  tenant_id: string;
  name: string;
  initiator_name: string | null;
  addresses: Json;
  zone: string;
  state: HostState;
  connectors: Json;
  instances: Json;
  agent_heartbeat_at: Timestamp | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  /** Hash of the host's one-time agent enrollment token, until it is used. Optional on insert. */
  enroll_token_hash: ColumnType<string | null, string | null | undefined, string | null>;
  enroll_expires_at: ColumnType<Timestamp | null, Timestamp | null | undefined, Timestamp | null>;
  /** Tenant ids (JSON array) it is restricted to; null: shared with every tenant. Optional on insert. */
  tenants: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface GrantTable {
  id: string;
  tenant_id: string;
  volume_id: VolumeId;
  host_id: string;
  mode: AccessMode;
  state: GrantState;
  state_reason: string | null;
  chap_user: string | null;
  /** AES-GCM sealed by SecretBox; never logged. */
  chap_secret_sealed: string | null;
  /** Connection info without the secret. */
  connection: Json | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface SnapshotTable {
  id: string;
  tenant_id: string;
  name: string;
  volume_id: VolumeId;
  backend_id: BackendId;
  state: SnapshotState;
  state_reason: string | null;
  size_bytes: number;
  driver_handle: Json | null;
  method: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  deleted_at: Timestamp | null;
}

export type HostRow = Selectable<HostTable>;
export type GrantRow = Selectable<GrantTable>;
export type SnapshotRow = Selectable<SnapshotTable>;

export interface AttachmentTable {
  id: string;
  tenant_id: string;
  volume_id: VolumeId;
  host_id: string;
  /** The VM on that host. */
  instance: string;
  mode: AccessMode;
  state: AttachmentState;
  state_reason: string | null;
  grant_id: string | null;
  /** The hypervisor's device id, as the agent reported it. */
  device_id: string | null;
  migration_id: string | null;
  /** When the agent last reported this attachment as connected. */
  reported_at: Timestamp | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface MigrationTable {
  id: string;
  tenant_id: string;
  instance: string;
  from_host_id: string;
  to_host_id: string;
  state: MigrationState;
  state_reason: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export type AttachmentRow = Selectable<AttachmentTable>;
export type MigrationRow = Selectable<MigrationTable>;

/** One Idempotency-Key of a tenant: the fingerprint of the request that first used it, and its answer once sent. */
export interface IdempotencyKeyTable {
  tenant_id: string;
  key: string;
  fingerprint: string;
  status_code: number | null;
  response: string | null;
  created_at: Timestamp;
  /** Until when the request holding an unanswered claim is known to be alive (it renews this). */
  claim_expires_at: Timestamp | null;
}
export type IdempotencyKeyRow = Selectable<IdempotencyKeyTable>;

/** A storage node: a server running `stowage node`, reached over mutual TLS pinned at enrollment. */
export interface NodeTable {
  id: string;
  name: string;
  /** host:port the control plane calls. */
  address: string;
  state: NodeState;
  state_reason: string | null;
  /** Administrative intent: `active`, or `draining` (no new placements). */
  admin_state: ColumnType<NodeAdminState, NodeAdminState | undefined, NodeAdminState>;
  version: string | null;
  /** The node process's boot id, as its last heartbeat said: a new one means it restarted. */
  boot_id: string | null;
  /** Incremented on every (re)connect; calls carry it and answers under an older one are ignored. */
  epoch: ColumnType<number, number | undefined, number>;
  /** The node's certificate, pinned at enrollment (null until enrolled). */
  cert_pem: string | null;
  cert_fingerprint: string | null;
  cert_expires_at: Timestamp | null;
  /** Hash of the one-time enrollment token, until used; never the token itself. */
  enroll_token_hash: string | null;
  enroll_expires_at: Timestamp | null;
  last_heartbeat_at: Timestamp | null;
  /** Node clock minus control-plane clock at the last heartbeat (ms, midpoint of the round trip). */
  clock_skew_ms: number | null;
  unreachable_since: Timestamp | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** The control plane's own TLS identities (`node-client`, `api`), one for all replicas; the key sealed by the SecretBox. */
export interface ControlIdentityTable {
  name: string;
  cert_pem: string;
  key_sealed: string;
  created_at: Timestamp;
}

export type NodeRow = Selectable<NodeTable>;
export type NewNodeRow = Insertable<NodeTable>;
export type NodeUpdate = Updateable<NodeTable>;

/** Limits of a tenant (class_id '') or of one class within it; a null limit is unlimited. */
export interface QuotaTable {
  tenant_id: string;
  /** The class the limits apply to; '' (not NULL, so the primary key works on both dialects): the tenant as a whole. */
  class_id: string;
  max_volumes: number | null;
  max_bytes: number | null;
  max_snapshots: number | null;
  updated_at: Timestamp;
}
export type QuotaRow = Selectable<QuotaTable>;

/** One row (id 1): its version moves with every change of a backend or node placement reads (migration 0018's triggers). */
export interface PlacementCatalogTable {
  id: number;
  /** A bigint: PostgreSQL returns it as a string. */
  version: number | string;
}
