import { StowageError } from '../../core/errors.js';
import type { AccessMode, ConnectionInfo } from '../../drivers/sdk/types.js';
import type { AttachedVolume } from '../hypervisor/attached-volumes.js';
import type { QemuVm } from '../hypervisor/qemu-vm.js';

/** Plugs volumes of one transport protocol into VMs. Both methods are idempotent. */
export interface Connector {
  readonly protocol: ConnectionInfo['protocol'];
  /** Attaches the volume to `vm` using what grantAccess returned; returns it as the hypervisor reports it. */
  connect(vm: QemuVm, volumeId: string, info: ConnectionInfo, mode: AccessMode, signal?: AbortSignal): Promise<AttachedVolume>;
  /** Detaches the volume from `vm`; a volume that is not attached is success. */
  disconnect(vm: QemuVm, volumeId: string, signal?: AbortSignal): Promise<void>;
}

/** The connector for `info.protocol`; throws CAPABILITY_MISSING when this agent has none. */
export function selectConnector(connectors: readonly Connector[], info: Pick<ConnectionInfo, 'protocol'>): Connector {
  const c = connectors.find((x) => x.protocol === info.protocol);
  if (c === undefined) {
    throw new StowageError('CAPABILITY_MISSING', `agent: no connector for protocol ${info.protocol} (have ${connectors.map((x) => x.protocol).join(', ') || 'none'})`, { protocol: info.protocol });
  }
  return c;
}

/** Throws INVALID_STATE when the grant is read-only but `mode` asks for read-write. */
export function assertModeAllowed(info: ConnectionInfo, mode: AccessMode, volumeId: string): void {
  if (info.mode === 'ro' && mode === 'rw') {
    throw new StowageError('INVALID_STATE', `agent: volume ${volumeId} was granted read-only; it cannot be attached read-write`, { volumeId, granted: info.mode, requested: mode });
  }
}
