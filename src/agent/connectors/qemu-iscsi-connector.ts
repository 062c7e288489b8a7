import { StowageError } from '../../core/errors.js';
import type { AccessMode, ConnectionInfo } from '../../drivers/sdk/types.js';
import type { AttachedVolume } from '../hypervisor/attached-volumes.js';
import type { QemuVm } from '../hypervisor/qemu-vm.js';
import { assertModeAllowed, type Connector } from './connector.js';

/** What the iSCSI connector needs to know about its host. */
export interface QemuIscsiConnectorOptions {
  /** This host's initiator IQN (the name targets bind in their ACLs). */
  readonly initiatorName: string;
}

/** Attaches iSCSI LUNs through QEMU's own initiator (libiscsi); CHAP secrets go in QMP secret objects. */
export class QemuIscsiConnector implements Connector {
  readonly protocol = 'iscsi' as const;
  private readonly initiatorName: string;

  constructor(options: QemuIscsiConnectorOptions) {
    this.initiatorName = options.initiatorName;
  }

  /** Attaches the LUN in `info`; throws VALIDATION_FAILED when portal, IQN or LUN is missing. */
  async connect(vm: QemuVm, volumeId: string, info: ConnectionInfo, mode: AccessMode, signal?: AbortSignal): Promise<AttachedVolume> {
    if (info.protocol !== 'iscsi') throw new StowageError('VALIDATION_FAILED', `agent: iSCSI connector got a ${info.protocol} connection`, { volumeId });
    assertModeAllowed(info, mode, volumeId);
    const { portal, iqn, lun } = info;
    if (portal === undefined || iqn === undefined || lun === undefined) {
      throw new StowageError('VALIDATION_FAILED', `agent: iSCSI connection info for ${volumeId} lacks portal, IQN or LUN`, { volumeId });
    }
    return vm.attachIscsi({
      volumeId,
      portal,
      iqn,
      lun,
      initiatorName: this.initiatorName,
      readOnly: mode === 'ro',
      ...(info.chapUser !== undefined ? { chapUser: info.chapUser } : {}),
      ...(info.chapSecret !== undefined ? { chapSecret: info.chapSecret } : {}),
    }, signal);
  }

  /** Detaches the volume (device, nodes and secret). */
  async disconnect(vm: QemuVm, volumeId: string, signal?: AbortSignal): Promise<void> {
    await vm.detach(volumeId, signal);
  }
}
