import { StowageError } from '../../core/errors.js';
import type { VolumeFormat } from '../../core/states.js';
import type {
  BlockDriver, ConnectionInfo, CreateVolume, DriverGrant, DriverHandle, GrantRequest, HostIdentity,
  ReconcileOptions, ReconcileReport,
} from './types.js';

/** Host access on the backend: ACLs, CHAP accounts, live sessions. */
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

/** A new volume from a snapshot or another volume, offloaded to the backend (constant time). */
export interface ClonePort {
  clone(source: DriverHandle, req: CreateVolume, signal: AbortSignal): Promise<DriverHandle>;
}

/** Where the volume's bytes are, for host-side copies (a path or URL qemu-img reads and writes). */
export interface DataPort {
  locate(handle: DriverHandle): { readonly path: string; readonly format: VolumeFormat };
}

/** Re-creates what a target daemon lost and removes orphan exports under our namespace. */
export interface ExportPort {
  reconcile(
    desired: readonly { readonly handle: DriverHandle; readonly grants: readonly GrantRequest[] }[],
    signal: AbortSignal,
    options?: ReconcileOptions,
  ): Promise<ReconcileReport>;
}

/** Every optional feature of a block driver, by the name the core asks for. */
export interface DriverPorts {
  readonly access: AccessPort;
  readonly snapshots: SnapshotPort;
  readonly revert: RevertPort;
  readonly clones: ClonePort;
  readonly data: DataPort;
  readonly exports: ExportPort;
}
export type PortName = keyof DriverPorts;

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
 * The driver's port `name`, or undefined when it has none. This is the one place the core learns
 * what a driver can do beyond the base contract.
 *
 * Transitional adapter: drivers still expose the optional methods of `BlockDriver`; the ports are
 * built from them here, so the core can already ask by port. A backend without ACLs of its own but
 * with a data path (a local `dir`) gets a file access port: the host opens the file directly, and
 * there is nothing to revoke.
 */
export function portOf<N extends PortName>(driver: BlockDriver, name: N): DriverPorts[N] | undefined {
  return adapt(driver)[name];
}

/** The driver's port `name`; throws CAPABILITY_MISSING naming the backend when it has none. */
export function requirePort<N extends PortName>(driver: BlockDriver, name: N, backendName: string): DriverPorts[N] {
  const port = portOf(driver, name);
  if (!port) throw new StowageError('CAPABILITY_MISSING', `backend ${backendName} cannot ${PORT_PURPOSE[name]} (its driver ${driver.scheme}:// has no ${name} port)`, { backend: backendName, port: name });
  return port;
}

function adapt(d: BlockDriver): Partial<DriverPorts> {
  const dataPath = d.dataPath?.bind(d);
  const [grant, revoke, listGrants] = [d.grantAccess?.bind(d), d.revokeAccess?.bind(d), d.listGrants?.bind(d)];
  const [createSnapshot, deleteSnapshot] = [d.createSnapshot?.bind(d), d.deleteSnapshot?.bind(d)];
  const [revertVolume, cloneVolume, reconcileExports] = [d.revertVolume?.bind(d), d.cloneVolume?.bind(d), d.reconcileExports?.bind(d)];
  const data: DataPort | undefined = dataPath ? { locate: dataPath } : undefined;
  const access: AccessPort | undefined = grant && revoke
    ? { grant, revoke, list: listGrants ?? (() => Promise.resolve([])) }
    : data
      ? { grant: (h, g) => Promise.resolve({ protocol: 'file', path: data.locate(h).path, mode: g.mode }), revoke: () => Promise.resolve(), list: () => Promise.resolve([]) }
      : undefined;
  return {
    ...(access ? { access } : {}),
    ...(data ? { data } : {}),
    ...(createSnapshot && deleteSnapshot ? { snapshots: { create: createSnapshot, delete: deleteSnapshot } } : {}),
    ...(revertVolume ? { revert: { revert: revertVolume } } : {}),
    ...(cloneVolume ? { clones: { clone: cloneVolume } } : {}),
    ...(reconcileExports ? { exports: { reconcile: reconcileExports } } : {}),
  };
}
