import type { Readable } from 'node:stream';
import { StowageError } from '../../core/errors.js';
import type { VolumeFormat } from '../../core/states.js';
import type {
  BlockDriver, Capability, ConnectionInfo, CreateVolume, DriverGrant, DriverHandle, GrantRequest, HostIdentity,
  ReconcileOptions, ReconcileReport,
} from './types.js';

/** Host access on the backend: ACLs, CHAP accounts, live sessions (for local files: where the file is, see file-access.ts). */
export interface AccessPort {
  /** Idempotent: granting an existing grant again returns the same connection info. */
  grant(handle: DriverHandle, grant: GrantRequest, signal: AbortSignal): Promise<ConnectionInfo>;
  /** Unbinds the host and drops its live sessions; revoking an absent grant succeeds. */
  revoke(handle: DriverHandle, host: HostIdentity, signal: AbortSignal): Promise<void>;
  /** Access as the backend really has it, for reconcilers. */
  list(signal: AbortSignal): Promise<DriverGrant[]>;
}

/** Snapshots of a volume kept by the backend. */
export interface SnapshotPort {
  /** `snapshotId` is the idempotency key. */
  create(handle: DriverHandle, snapshotId: string, signal: AbortSignal): Promise<DriverHandle>;
  /** A snapshot already gone is success. */
  delete(snapshotHandle: DriverHandle, signal: AbortSignal): Promise<void>;
}

/** Rolls a volume back to one of its snapshots. */
export interface RevertPort {
  revert(handle: DriverHandle, snapshotHandle: DriverHandle, signal: AbortSignal): Promise<void>;
}

/** A new volume from a snapshot or another volume, made by the backend: in constant time when it reports `clone.offload`, else by its own copy. */
export interface ClonePort {
  clone(source: DriverHandle, req: CreateVolume, signal: AbortSignal): Promise<DriverHandle>;
}

/** A volume's bytes as a stream, with what a writer needs to know of them. */
export interface VolumeData {
  readonly stream: Readable;
  /** Length of the stream in bytes (the file's size: for qcow2, not the virtual size). */
  readonly sizeBytes: number;
  readonly format: VolumeFormat;
}

/**
 * Where the volume's bytes are, for host-side copies. `locate` gives a path on this machine (drivers
 * running in this process; qemu-img reads and writes it); a backend on a storage node has no path
 * here (`BlockDriver.node` is set, `locate` throws CAPABILITY_MISSING) and its bytes stream through
 * `openRead`/`writeFrom` instead, so a copy between nodes never lands on the control plane's disk.
 */
export interface DataPort {
  locate(handle: DriverHandle): { readonly path: string; readonly format: VolumeFormat };
  /** The volume's bytes, from the start. */
  openRead?(handle: DriverHandle, signal: AbortSignal): Promise<VolumeData>;
  /** Replaces the volume's bytes with `data` (same format), flushed before this resolves; `progress` gets bytes written so far. */
  writeFrom?(handle: DriverHandle, data: VolumeData, signal: AbortSignal, progress?: (bytesWritten: number) => void): Promise<void>;
}

/** One volume the backend should export and the hosts it should let in (no credentials: see ExportPort.drift). */
export interface ExpectedExport {
  readonly handle: DriverHandle;
  readonly hosts: readonly HostIdentity[];
}

/** What a target daemon lacks of what it should export, e.g. `target:<volume id>`, `acl:<volume id>:<address>`. */
export interface ExportDrift {
  readonly missing: readonly string[];
}

/** Re-creates what a target daemon lost and removes orphan exports under our namespace. */
export interface ExportPort {
  reconcile(
    desired: readonly { readonly handle: DriverHandle; readonly grants: readonly GrantRequest[] }[],
    signal: AbortSignal,
    options?: ReconcileOptions,
  ): Promise<ReconcileReport>;
  /**
   * Whether the daemon lost any of `expected` (a restart keeps nothing), from one cheap read and
   * changing nothing: the export watch asks every few seconds and reconciles the backend when it
   * did. Arguments and answer are plain JSON (a backend on a storage node answers it remotely);
   * orphans are not looked for (the full reconcile removes those). Throws BACKEND_UNAVAILABLE when
   * the daemon does not answer.
   */
  drift(expected: readonly ExpectedExport[], signal: AbortSignal): Promise<ExportDrift>;
}

/** The name of each optional feature of a block driver, as the core asks for it. */
export type PortName = 'access' | 'snapshots' | 'revert' | 'clones' | 'data' | 'exports';

/** Every optional feature of a block driver, by the name the core asks for (the fields of BlockDriver). */
export type DriverPorts = { readonly [K in PortName]: NonNullable<BlockDriver[K]> };

/** What each port lets a backend do, for the error that says it cannot. */
const PORT_PURPOSE = {
  access: 'grant hosts access',
  snapshots: 'take snapshots',
  revert: 'revert volumes to a snapshot',
  clones: 'clone volumes on the backend',
  data: 'expose its data for a host copy',
  exports: 'reconcile its exports',
} as const satisfies Record<PortName, string>;

/**
 * The port each capability needs: a driver that declares the capability must have the port (the
 * registry checks). Capabilities that only describe the base contract (thin, resize, formats,
 * quota) need none.
 */
export const CAPABILITY_PORTS = {
  'thin': null,
  'resize': null,
  'resize.online': null,
  'snapshot': 'snapshots',
  'snapshot.offload': 'snapshots',
  'clone': 'clones',
  'clone.offload': 'clones',
  'revert': 'revert',
  'access.initiator': 'access',
  'access.chap': 'access',
  'access.address': 'access',
  'multiattach': 'access',
  'quota': null,
  'format.raw': null,
  'format.qcow2': null,
} as const satisfies Record<Capability, PortName | null>;

/** The driver's port `name`, or undefined when it has none: the one place the core learns what a driver can do beyond the base contract. */
export function portOf<N extends PortName>(driver: BlockDriver, name: N): NonNullable<BlockDriver[N]> | undefined {
  return driver[name] ?? undefined;
}

/** The driver's port `name`; throws CAPABILITY_MISSING naming the backend when it has none. */
export function requirePort<N extends PortName>(driver: BlockDriver, name: N, backendName: string): NonNullable<BlockDriver[N]> {
  const port = portOf(driver, name);
  if (!port) throw new StowageError('CAPABILITY_MISSING', `backend ${backendName} cannot ${PORT_PURPOSE[name]} (its driver ${driver.scheme}:// has no ${name} port)`, { backend: backendName, port: name });
  return port;
}
