import type { CommandRunner } from '../../system/command-runner.js';
import type { Capability } from '../../core/capabilities.js';
import type { AccessMode, BackendKind, VolumeFormat } from '../../core/states.js';
import type { AccessPort, ClonePort, DataPort, ExportPort, RevertPort, SnapshotPort } from './ports.js';
import type { DriverHandle } from '../../core/models.js';

/** Capability names a driver may report (defined in core, the domain; re-exported for drivers). */
export { CAPABILITIES, type Capability } from '../../core/capabilities.js';

/** Opaque JSON the driver returns at create and gets back on every later call (defined in core, which the store shares). */
export type { DriverHandle } from '../../core/models.js';

/** Capacity and health as the backend reports it (bytes). */
export interface BackendReport {
  readonly totalBytes: number;
  readonly freeBytes: number;
  readonly usedBytes: number;
  readonly capabilities: readonly Capability[];
  /** Free-form facts for operators (filesystem type, daemon version, …). */
  readonly info?: Readonly<Record<string, string>>;
}

/** What the core asks a driver to create. `id` is the idempotency key. */
export interface CreateVolume {
  readonly id: string;
  readonly name: string;
  readonly sizeBytes: number;
  readonly format?: VolumeFormat;
}

/** A volume as the driver sees it (ground truth for reconcilers). */
export interface DriverVolume {
  readonly id: string;
  readonly sizeBytes: number;
  readonly allocatedBytes?: number;
  readonly handle: DriverHandle;
}

/** A host as drivers see it when granting access. */
export interface HostIdentity {
  readonly name: string;
  readonly initiatorName?: string;
  readonly addresses: readonly string[];
}

/** Read-write or read-only (the union lives with the other domain unions in `core/states.ts`). */
export type { AccessMode };

/** How a host reaches a volume after an access grant. Secrets are returned, never logged. */
export interface ConnectionInfo {
  readonly protocol: 'iscsi' | 'file' | 'nfs';
  readonly portal?: string;
  readonly iqn?: string;
  readonly lun?: number;
  readonly path?: string;
  readonly chapUser?: string;
  readonly chapSecret?: string;
  readonly mode: AccessMode;
}

/** CHAP credentials generated and stored (encrypted) by the core, handed to the driver per grant. */
export interface ChapCredentials {
  readonly user: string;
  readonly secret: string;
}

/** One desired access: this host may reach this volume in this mode, optionally with CHAP. */
export interface GrantRequest {
  readonly host: HostIdentity;
  readonly mode: AccessMode;
  readonly chap?: ChapCredentials;
}

/** Access as the backend really has it (for reconcilers). */
export interface DriverGrant {
  readonly volumeId: string;
  /** Initiator address or name the backend binds. */
  readonly initiator: string;
  readonly chapUser?: string;
}

/** What a reconcile pass changed, for events and logs. */
export interface ReconcileReport {
  readonly restored: readonly string[];
  readonly removed: readonly string[];
}

/** What the core tells a reconcile pass beyond the desired set. */
export interface ReconcileOptions {
  /**
   * Of these volume ids, the ones the control plane still knows (on any backend, in any state but
   * deleted). Backends may share one target daemon and namespace, and a volume being created is
   * not desired yet: such exports are not orphans and must be left alone.
   */
  knownVolumes?(volumeIds: readonly string[]): Promise<ReadonlySet<string>>;
}

/** Progress callback for long copies: fraction 0..1. */
export type ProgressFn = (fraction: number) => void;

/** The block-storage driver contract. Every method is idempotent keyed by our ids. */
export interface BlockDriver {
  readonly scheme: string;
  readonly kind: BackendKind;
  /**
   * The local directory this backend keeps its data in, normalised, when it has one: the core
   * refuses a second backend on the same, an enclosing or an enclosed directory, and splits the
   * capacity of a filesystem between the backends on it.
   */
  readonly localDir?: string | undefined;
  /**
   * The storage node this driver runs on, for a backend placed on one (the remote port sets it);
   * undefined for a driver running in this process. Paths it reports (localDir, data.locate) are the node's.
   */
  readonly node?: string | undefined;
  probe(signal: AbortSignal): Promise<BackendReport>;
  /** Creates the volume; on an existing id with the same size, returns its handle. */
  createVolume(req: CreateVolume, signal: AbortSignal): Promise<DriverHandle>;
  /** Deletes the volume; a volume already gone is success. */
  deleteVolume(handle: DriverHandle, signal: AbortSignal): Promise<void>;
  /** Grows the volume to sizeBytes; growing to the current size is a no-op. */
  resizeVolume(handle: DriverHandle, sizeBytes: number, signal: AbortSignal): Promise<void>;
  listVolumes(signal: AbortSignal): Promise<DriverVolume[]>;
  /**
   * Every capability this driver may report in a probe (for its configuration). The registry
   * refuses a driver that declares a capability without the port it needs, and a probe that reports
   * one it did not declare; so a reported capability always has its port.
   */
  readonly capabilities: ReadonlySet<Capability>;
  /** Optional features, each a port; the core asks for them with `portOf`/`requirePort` only. */
  readonly access?: AccessPort | undefined;
  readonly snapshots?: SnapshotPort | undefined;
  readonly revert?: RevertPort | undefined;
  readonly clones?: ClonePort | undefined;
  readonly data?: DataPort | undefined;
  readonly exports?: ExportPort | undefined;
  /** Releases timers, connections. */
  close?(): Promise<void>;
}

/** What a driver gets at construction. Drivers never import the store or child_process. */
export interface DriverDeps {
  readonly runner: CommandRunner;
  /** Base directory for drivers that keep local state (default: the data dir). */
  readonly dataDir: string;
}

/** Builds drivers for one URI scheme. */
export interface DriverFactory {
  readonly scheme: string;
  readonly kind: BackendKind;
  /** Short human description for `backend create --help` and error messages. */
  readonly description: string;
  /** Validates the URI and options (throws INVALID_DRIVER_URI) and returns a driver. */
  create(uri: URL, options: Readonly<Record<string, string>>, deps: DriverDeps): BlockDriver;
  /**
   * Validates the URI exactly as typed and returns the form to store and show (paths decoded once,
   * normalised, re-encoded), so the URI an operator sees names what the driver uses. Throws
   * INVALID_DRIVER_URI naming the typed text. Absent: the URI is kept as typed.
   */
  normalize?(typed: string): string;
}
