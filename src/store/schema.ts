import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/**
 * The store schema, one interface per table. Timestamps are ISO-8601 text (sortable on both
 * dialects); JSON columns are text written and read by the repositories; sizes are bigint bytes.
 */
export interface Database {
  tenants: TenantTable;
  api_tokens: ApiTokenTable;
  backends: BackendTable;
  volumes: VolumeTable;
  operations: OperationTable;
  events: EventTable;
}

type Json = string;
type Timestamp = string;

export interface TenantTable {
  id: string;
  name: string;
  created_at: Timestamp;
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
}

export interface BackendTable {
  id: string;
  tenant_id: string;
  name: string;
  driver_uri: string;
  kind: string;
  role: string;
  state: string;
  state_reason: string | null;
  /** Administrative intent: enabled or disabled. `state` adds offline/error from probes. */
  admin_state: string;
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
}

export interface VolumeTable {
  id: string;
  tenant_id: string;
  name: string;
  backend_id: string | null;
  state: string;
  state_reason: string | null;
  size_bytes: number;
  format: string;
  driver_handle: Json | null;
  placement: Json | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  deleted_at: Timestamp | null;
}

export interface OperationTable {
  id: string;
  tenant_id: string;
  kind: string;
  target_type: string;
  target_id: string;
  state: string;
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
/** Unused marker so ColumnType stays available for later tables. */
export type _Column = ColumnType<string>;
