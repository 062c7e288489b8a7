import { compileMachine, statesWhere, type ResumePath } from './state-machine.js';

/*
 * One table of states per resource. Every list of states anywhere in the code (which states count
 * on a backend, which ones an agent should have connected, which ones the sweeper watches) is
 * derived from these tables, and `to` lists the only moves `transition()` accepts. Adding a state
 * means adding a row here, and the compiler then asks every `Record<State, …>` for its answer.
 */

/** The states of a volume (the keys of its table below, checked both ways by `satisfies`). */
export type VolumeState = 'creating' | 'available' | 'resizing' | 'reverting' | 'deleting' | 'deleted' | 'error';

/** What the code needs to know about one volume state. */
export interface VolumeStateInfo {
  /** Owned by a running operation; never terminal. */
  readonly transitional: boolean;
  /**
   * Its size counts as provisioned on its backend. A `creating` volume is not provisioned yet: its
   * held claim is what counts until the create commits it (in the same transaction as the move to
   * `available`), so nothing is counted twice. `resizing` counts at the old size; the growth is a
   * held claim until the resize commits.
   */
  readonly provisioned: boolean;
  /** Occupies its backend (volume counts, usage): its bytes are there or being made there. */
  readonly live: boolean;
  /** The backend keeps its exports (grants) in place; the export reconciler restores them. */
  readonly exported: boolean;
  /** How a transitional state ends when its operation is lost (null for settled states). */
  readonly resume: ResumePath<VolumeState> | null;
  /** States it may move to. */
  readonly to: readonly VolumeState[];
}

/** Volume lifecycle. */
export const VOLUME_STATE_TABLE = {
  creating: { transitional: true, provisioned: false, live: true, exported: false, resume: { operation: 'volume.create', orphan: 'error' }, to: ['available', 'error'] },
  available: { transitional: false, provisioned: true, live: true, exported: true, resume: null, to: ['resizing', 'reverting', 'deleting'] },
  resizing: { transitional: true, provisioned: true, live: true, exported: true, resume: { operation: 'volume.resize', orphan: 'error' }, to: ['available', 'error'] },
  reverting: { transitional: true, provisioned: true, live: true, exported: false, resume: { operation: 'volume.revert', orphan: 'error' }, to: ['available', 'error'] },
  deleting: { transitional: true, provisioned: true, live: true, exported: false, resume: { operation: 'volume.delete', orphan: 'error' }, to: ['deleted', 'error'] },
  deleted: { transitional: false, provisioned: false, live: false, exported: false, resume: null, to: [] },
  error: { transitional: false, provisioned: false, live: false, exported: false, resume: null, to: ['deleting'] },
} as const satisfies Record<VolumeState, VolumeStateInfo>;

/** Every volume state, in lifecycle order. */
export const VOLUME_STATES = Object.keys(VOLUME_STATE_TABLE) as readonly VolumeState[] as readonly [VolumeState, ...VolumeState[]];
/** Volume states owned by a running operation (the stale-state sweeper watches these). */
export const TRANSITIONAL_VOLUME_STATES = statesWhere(VOLUME_STATE_TABLE, (s) => s.transitional);
/** Volume states whose size counts as provisioned on their backend. */
export const PROVISIONED_VOLUME_STATES = statesWhere(VOLUME_STATE_TABLE, (s) => s.provisioned);
/** Volume states that occupy a backend (counts and usage). */
export const LIVE_VOLUME_STATES = statesWhere(VOLUME_STATE_TABLE, (s) => s.live);
/** Volume states whose grants the backend keeps exported. */
export const EXPORTED_VOLUME_STATES = statesWhere(VOLUME_STATE_TABLE, (s) => s.exported);
/** Compiled moves of volumes. */
export const VOLUME_MACHINE = compileMachine('volume', VOLUME_STATE_TABLE);

/** The states of a snapshot (the keys of its table below, checked both ways by `satisfies`). */
export type SnapshotState = 'creating' | 'available' | 'deleting' | 'deleted' | 'error';

/** What the code needs to know about one snapshot state. */
export interface SnapshotStateInfo {
  readonly transitional: boolean;
  /** A full-copy snapshot in this state takes its size on the backend. */
  readonly occupiesBackend: boolean;
  readonly resume: ResumePath<SnapshotState> | null;
  readonly to: readonly SnapshotState[];
}

/** Snapshot lifecycle. */
export const SNAPSHOT_STATE_TABLE = {
  creating: { transitional: true, occupiesBackend: false, resume: { operation: 'snapshot.create', orphan: 'error' }, to: ['available', 'error'] },
  available: { transitional: false, occupiesBackend: true, resume: null, to: ['deleting'] },
  deleting: { transitional: true, occupiesBackend: true, resume: { operation: 'snapshot.delete', orphan: 'error' }, to: ['deleted', 'error'] },
  deleted: { transitional: false, occupiesBackend: false, resume: null, to: [] },
  error: { transitional: false, occupiesBackend: true, resume: null, to: ['deleting'] },
} as const satisfies Record<SnapshotState, SnapshotStateInfo>;
export const SNAPSHOT_STATES = Object.keys(SNAPSHOT_STATE_TABLE) as readonly SnapshotState[] as readonly [SnapshotState, ...SnapshotState[]];
/** Snapshot states in which a full copy takes its size on the backend. */
export const BACKEND_OCCUPYING_SNAPSHOT_STATES = statesWhere(SNAPSHOT_STATE_TABLE, (s) => s.occupiesBackend);
export const SNAPSHOT_MACHINE = compileMachine('snapshot', SNAPSHOT_STATE_TABLE);

/** The states of a grant (the keys of its table below, checked both ways by `satisfies`). */
export type GrantState = 'granting' | 'active' | 'revoking' | 'revoked' | 'error';

/** What the code needs to know about one grant state. */
export interface GrantStateInfo {
  readonly transitional: boolean;
  /** This host should have access, or is about to, or may still have it (error): not yet revoked. */
  readonly live: boolean;
  /** The backend should hold this access right now (the export reconciler restores it). */
  readonly desired: boolean;
  readonly resume: ResumePath<GrantState> | null;
  readonly to: readonly GrantState[];
}

/** Grant lifecycle: granting → active → revoking → revoked, or error (the reconciler finishes the revoke). */
export const GRANT_STATE_TABLE = {
  granting: { transitional: true, live: true, desired: true, resume: { operation: 'grant.create', orphan: 'revoked' }, to: ['active', 'revoking', 'revoked', 'error'] },
  active: { transitional: false, live: true, desired: true, resume: null, to: ['revoking', 'revoked', 'error'] },
  revoking: { transitional: true, live: true, desired: false, resume: { operation: 'grant.revoke', orphan: 'error' }, to: ['revoked', 'error'] },
  revoked: { transitional: false, live: false, desired: false, resume: null, to: [] },
  error: { transitional: false, live: true, desired: false, resume: null, to: ['revoking', 'revoked'] },
} as const satisfies Record<GrantState, GrantStateInfo>;
export const GRANT_STATES = Object.keys(GRANT_STATE_TABLE) as readonly GrantState[] as readonly [GrantState, ...GrantState[]];
/** Grant states that mean "this host should have access" (or is about to, or may still). */
export const LIVE_GRANT_STATES = statesWhere(GRANT_STATE_TABLE, (s) => s.live);
/** Grant states the backend should hold right now. */
export const DESIRED_GRANT_STATES = statesWhere(GRANT_STATE_TABLE, (s) => s.desired);
export const GRANT_MACHINE = compileMachine('grant', GRANT_STATE_TABLE);

/** The states of a attachment (the keys of its table below, checked both ways by `satisfies`). */
export type AttachmentState = 'granting' | 'connecting' | 'attached' | 'disconnecting' | 'revoking' | 'gone' | 'error';

/** What the code needs to know about one attachment state. */
export interface AttachmentStateInfo {
  readonly transitional: boolean;
  /** The volume is, or is becoming, or still is connected on the host. */
  readonly live: boolean;
  /** The host's agent should have the volume connected. */
  readonly wanted: boolean;
  readonly resume: ResumePath<AttachmentState> | null;
  readonly to: readonly AttachmentState[];
}

/** Attachment lifecycle: granting → connecting → attached → disconnecting → revoking → gone, or error. */
export const ATTACHMENT_STATE_TABLE = {
  granting: { transitional: true, live: true, wanted: false, resume: { operation: 'attachment.attach', orphan: 'error' }, to: ['connecting', 'disconnecting', 'revoking', 'gone', 'error'] },
  connecting: { transitional: true, live: true, wanted: true, resume: { operation: 'attachment.attach', orphan: 'error' }, to: ['attached', 'disconnecting', 'revoking', 'gone', 'error'] },
  attached: { transitional: false, live: true, wanted: true, resume: null, to: ['disconnecting', 'revoking', 'gone', 'error'] },
  disconnecting: { transitional: true, live: true, wanted: false, resume: { operation: 'attachment.detach', orphan: 'error' }, to: ['revoking', 'gone', 'error'] },
  revoking: { transitional: true, live: true, wanted: false, resume: { operation: 'attachment.detach', orphan: 'error' }, to: ['disconnecting', 'gone', 'error'] },
  gone: { transitional: false, live: false, wanted: false, resume: null, to: [] },
  error: { transitional: false, live: false, wanted: false, resume: null, to: ['disconnecting', 'revoking', 'gone'] },
} as const satisfies Record<AttachmentState, AttachmentStateInfo>;
export const ATTACHMENT_STATES = Object.keys(ATTACHMENT_STATE_TABLE) as readonly AttachmentState[] as readonly [AttachmentState, ...AttachmentState[]];
/** Attachment states in which the volume is (or is becoming, or still is) connected on the host. */
export const LIVE_ATTACHMENT_STATES = statesWhere(ATTACHMENT_STATE_TABLE, (s) => s.live);
/** Attachment states in which the agent should have the volume connected. */
export const WANTED_ATTACHMENT_STATES = statesWhere(ATTACHMENT_STATE_TABLE, (s) => s.wanted);
export const ATTACHMENT_MACHINE = compileMachine('attachment', ATTACHMENT_STATE_TABLE);

/** The states of a migration (the keys of its table below, checked both ways by `satisfies`). */
export type MigrationState = 'starting' | 'ready' | 'completing' | 'completed' | 'aborting' | 'aborted' | 'error';

/** What the code needs to know about one migration state. */
export interface MigrationStateInfo {
  readonly transitional: boolean;
  /** Not finished: a new migration of the same instance between the same hosts resumes this one. */
  readonly open: boolean;
  readonly resume: ResumePath<MigrationState> | null;
  readonly to: readonly MigrationState[];
}

/** Migration lifecycle: starting → ready → completing → completed, or aborting → aborted, or error. */
export const MIGRATION_STATE_TABLE = {
  starting: { transitional: true, open: true, resume: { operation: 'migration.start', orphan: 'aborted' }, to: ['ready', 'aborting', 'aborted', 'error'] },
  ready: { transitional: false, open: true, resume: null, to: ['completing', 'aborting'] },
  completing: { transitional: true, open: true, resume: { operation: 'migration.complete', orphan: 'error' }, to: ['completed', 'error'] },
  completed: { transitional: false, open: false, resume: null, to: [] },
  aborting: { transitional: true, open: true, resume: { operation: 'migration.abort', orphan: 'error' }, to: ['aborted', 'error'] },
  aborted: { transitional: false, open: false, resume: null, to: [] },
  error: { transitional: false, open: true, resume: null, to: ['aborting'] },
} as const satisfies Record<MigrationState, MigrationStateInfo>;
export const MIGRATION_STATES = Object.keys(MIGRATION_STATE_TABLE) as readonly MigrationState[] as readonly [MigrationState, ...MigrationState[]];
/** Migrations not finished yet. */
export const OPEN_MIGRATION_STATES = statesWhere(MIGRATION_STATE_TABLE, (s) => s.open);
export const MIGRATION_MACHINE = compileMachine('migration', MIGRATION_STATE_TABLE);

/** The states of a host (the keys of its table below, checked both ways by `satisfies`). */
export type HostState = 'up' | 'down' | 'fenced' | 'maintenance' | 'unknown';

/** What the code needs to know about one host state. */
export interface HostStateInfo {
  readonly transitional: false;
  readonly resume: null;
  readonly to: readonly HostState[];
}

/** Host liveness: unknown until its agent reports, up/down by heartbeat, fenced by an operator. */
export const HOST_STATE_TABLE = {
  up: { transitional: false, resume: null, to: ['down', 'fenced', 'maintenance'] },
  down: { transitional: false, resume: null, to: ['up', 'fenced', 'maintenance'] },
  fenced: { transitional: false, resume: null, to: ['unknown'] },
  maintenance: { transitional: false, resume: null, to: ['up', 'down', 'fenced', 'unknown'] },
  unknown: { transitional: false, resume: null, to: ['up', 'down', 'fenced', 'maintenance'] },
} as const satisfies Record<HostState, HostStateInfo>;
export const HOST_STATES = Object.keys(HOST_STATE_TABLE) as readonly HostState[] as readonly [HostState, ...HostState[]];
export const HOST_MACHINE = compileMachine('host', HOST_STATE_TABLE);

/** The states of a backend (the keys of its table below, checked both ways by `satisfies`). */
export type BackendState = 'enabled' | 'disabled' | 'offline' | 'error';

/** What the code needs to know about one backend state. */
export interface BackendStateInfo {
  /** Placement may put new volumes there. */
  readonly placeable: boolean;
  readonly transitional: false;
  readonly resume: null;
  readonly to: readonly BackendState[];
}

/** Backend health as placement sees it: an operator's intent (disabled) plus what probes found. */
export const BACKEND_STATE_TABLE = {
  enabled: { placeable: true, transitional: false, resume: null, to: ['disabled', 'offline', 'error'] },
  disabled: { placeable: false, transitional: false, resume: null, to: ['enabled', 'offline', 'error'] },
  offline: { placeable: false, transitional: false, resume: null, to: ['enabled', 'disabled', 'error'] },
  error: { placeable: false, transitional: false, resume: null, to: ['enabled', 'disabled', 'offline'] },
} as const satisfies Record<BackendState, BackendStateInfo>;
export const BACKEND_STATES = Object.keys(BACKEND_STATE_TABLE) as readonly BackendState[] as readonly [BackendState, ...BackendState[]];
export const BACKEND_MACHINE = compileMachine('backend', BACKEND_STATE_TABLE);

/** An operator's intent for a backend (`state` adds offline/error from probes). */
export const BACKEND_ADMIN_STATES = ['enabled', 'disabled'] as const satisfies readonly BackendState[];
export type BackendAdminState = (typeof BACKEND_ADMIN_STATES)[number];

/** The states of a storage node (the keys of its table below, checked both ways by `satisfies`). */
export type NodeState = 'enrolling' | 'syncing' | 'ready' | 'unreachable' | 'auth_failed' | 'version_mismatch' | 'draining';

/** What the code needs to know about one node state. */
export interface NodeStateInfo {
  /** The node answers and is in sync: its backends may serve calls. */
  readonly serving: boolean;
  /** Placement may put new resources on its backends. */
  readonly placeable: boolean;
  readonly transitional: boolean;
  readonly resume: null;
  readonly to: readonly NodeState[];
}

/**
 * Node liveness and trust as the control plane sees them (a dead tgtd on a live node is its
 * backend's state, not the node's): enrolling until it presents its key, syncing while its desired
 * state is replayed after a (re)connect, ready, unreachable when heartbeats stop, auth_failed when
 * it shows another certificate than the pinned one, version_mismatch when it speaks another
 * protocol, draining when an operator moves work off it (it still serves what it has).
 */
export const NODE_STATE_TABLE = {
  enrolling: { serving: false, placeable: false, transitional: true, resume: null, to: ['syncing', 'unreachable', 'auth_failed', 'version_mismatch'] },
  syncing: { serving: false, placeable: false, transitional: true, resume: null, to: ['ready', 'draining', 'unreachable', 'auth_failed', 'version_mismatch', 'syncing'] },
  ready: { serving: true, placeable: true, transitional: false, resume: null, to: ['syncing', 'unreachable', 'auth_failed', 'version_mismatch', 'draining'] },
  unreachable: { serving: false, placeable: false, transitional: false, resume: null, to: ['syncing', 'auth_failed', 'version_mismatch', 'enrolling'] },
  auth_failed: { serving: false, placeable: false, transitional: false, resume: null, to: ['syncing', 'unreachable', 'version_mismatch', 'enrolling'] },
  version_mismatch: { serving: false, placeable: false, transitional: false, resume: null, to: ['syncing', 'unreachable', 'auth_failed', 'enrolling'] },
  draining: { serving: true, placeable: false, transitional: false, resume: null, to: ['syncing', 'ready', 'unreachable', 'auth_failed', 'version_mismatch'] },
} as const satisfies Record<NodeState, NodeStateInfo>;
export const NODE_STATES = Object.keys(NODE_STATE_TABLE) as readonly NodeState[] as readonly [NodeState, ...NodeState[]];
export const SERVING_NODE_STATES = statesWhere(NODE_STATE_TABLE, (s) => s.serving);
export const PLACEABLE_NODE_STATES = statesWhere(NODE_STATE_TABLE, (s) => s.placeable);
export const NODE_MACHINE = compileMachine('node', NODE_STATE_TABLE);

/** An operator's intent for a node. */
export const NODE_ADMIN_STATES = ['active', 'draining'] as const;
export type NodeAdminState = (typeof NODE_ADMIN_STATES)[number];

/** The states of a operation (the keys of its table below, checked both ways by `satisfies`). */
export type OperationState = 'queued' | 'running' | 'succeeded' | 'failed';

/** What the code needs to know about one operation state. */
export interface OperationStateInfo {
  /** Not finished: a worker runs it or will (the stale-state sweeper and claim sweeper look for these). */
  readonly active: boolean;
  readonly transitional: boolean;
  /** A lost worker's operation is claimed again once its lease expires. */
  readonly resume: ResumePath<OperationState> | null;
  readonly to: readonly OperationState[];
}

/** Operation lifecycle. */
export const OPERATION_STATE_TABLE = {
  queued: { active: true, transitional: true, resume: { operation: 'any worker claims it', orphan: 'failed' }, to: ['running', 'succeeded', 'failed'] },
  running: { active: true, transitional: true, resume: { operation: 'any worker claims it once the lease expires', orphan: 'failed' }, to: ['succeeded', 'failed'] },
  succeeded: { active: false, transitional: false, resume: null, to: [] },
  failed: { active: false, transitional: false, resume: null, to: [] },
} as const satisfies Record<OperationState, OperationStateInfo>;
export const OPERATION_STATES = Object.keys(OPERATION_STATE_TABLE) as readonly OperationState[] as readonly [OperationState, ...OperationState[]];
/** Operations not finished yet. */
export const ACTIVE_OPERATION_STATES = statesWhere(OPERATION_STATE_TABLE, (s) => s.active);
/** Operations that are finished (succeeded or failed): nothing runs them again. */
export const FINISHED_OPERATION_STATES = statesWhere(OPERATION_STATE_TABLE, (s) => !s.active);
export const OPERATION_MACHINE = compileMachine('operation', OPERATION_STATE_TABLE);

/** The states of a claim (the keys of its table below, checked both ways by `satisfies`). */
export type ClaimState = 'held' | 'committed' | 'released';

/** What the code needs to know about one claim state. */
export interface ClaimStateInfo {
  /** Counts against the backend's capacity. */
  readonly counts: boolean;
  readonly transitional: boolean;
  readonly resume: ResumePath<ClaimState> | null;
  readonly to: readonly ClaimState[];
}

/** A claim: held (counts against the backend), committed (now part of a resource), released. */
export const CLAIM_STATE_TABLE = {
  held: { counts: true, transitional: true, resume: { operation: 'claim sweeper', orphan: 'released' }, to: ['committed', 'released'] },
  committed: { counts: false, transitional: false, resume: null, to: [] },
  released: { counts: false, transitional: false, resume: null, to: [] },
} as const satisfies Record<ClaimState, ClaimStateInfo>;
export const CLAIM_STATES = Object.keys(CLAIM_STATE_TABLE) as readonly ClaimState[] as readonly [ClaimState, ...ClaimState[]];
export const CLAIM_MACHINE = compileMachine('claim', CLAIM_STATE_TABLE);

export const BACKEND_ROLES = ['primary', 'repository'] as const;
export type BackendRole = (typeof BACKEND_ROLES)[number];

/** The placement policies a storage class may choose. */
export const PLACEMENT_POLICIES = ['cheapest', 'spread', 'pack'] as const;

/** Placement policy: `cheapest` (lowest cost, then most room), `spread` (most room), `pack` (least room that fits). */
export type PlacementPolicy = (typeof PLACEMENT_POLICIES)[number];

export const BACKEND_KINDS = ['block', 'file', 'object'] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];

export const VOLUME_FORMATS = ['raw', 'qcow2'] as const;
export type VolumeFormat = (typeof VOLUME_FORMATS)[number];

/** How a host may use a volume: read-write or read-only. */
export const ACCESS_MODES = ['rw', 'ro'] as const;
export type AccessMode = (typeof ACCESS_MODES)[number];
