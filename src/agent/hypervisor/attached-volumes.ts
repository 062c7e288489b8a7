import { parseDeviceId, parseNodeName, parseSecretId } from './qemu-names.js';

/**
 * One volume as QEMU really has it. `attached` means our scsi-hd device is plugged with our format
 * node inserted; `partial` means only some pieces exist (an attach or detach was interrupted).
 */
export interface AttachedVolume {
  readonly volumeId: string;
  readonly state: 'attached' | 'partial';
  /** Our device id, when the device exists. */
  readonly deviceId: string | undefined;
  /** Our format node, when it exists. */
  readonly nodeName: string | undefined;
  /** Our protocol node, when it exists. */
  readonly protocolNodeName: string | undefined;
  /** Our secret object id, when it exists. */
  readonly secretId: string | undefined;
  /** Driver of the protocol node (`iscsi`, `file`, …). */
  readonly protocol: string | undefined;
  /** Driver of the format node (`raw`, `qcow2`). */
  readonly format: string | undefined;
  /** Whether the format node is read-only. */
  readonly readOnly: boolean | undefined;
  /** Virtual size of the format node in bytes. */
  readonly sizeBytes: number | undefined;
}

/** One entry of `query-named-block-nodes` (only the fields we read). */
export interface BlockNodeInfo {
  readonly nodeName: string;
  readonly driver: string;
  readonly readOnly: boolean;
  readonly sizeBytes: number | undefined;
}

/** One entry of `query-block` (only the fields we read). */
export interface BlockBackendInfo {
  /** The device id or QOM path of the attached device, when there is one. */
  readonly qdev: string | undefined;
  /** The node inserted in it, when there is one. */
  readonly nodeName: string | undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function records(v: unknown): Record<string, unknown>[] {
  return Array.isArray(v) ? v.filter(isRecord) : [];
}

/** Parses the `return` of `query-named-block-nodes` (`flat: true`). */
export function parseNamedBlockNodes(value: unknown): BlockNodeInfo[] {
  return records(value).flatMap((n) => {
    if (typeof n['node-name'] !== 'string') return [];
    const image = isRecord(n.image) ? n.image : {};
    const size = image['virtual-size'];
    return [{ nodeName: n['node-name'], driver: typeof n.drv === 'string' ? n.drv : 'unknown', readOnly: n.ro === true, sizeBytes: typeof size === 'number' ? size : undefined }];
  });
}

/** Parses the `return` of `query-block`. */
export function parseQueryBlock(value: unknown): BlockBackendInfo[] {
  return records(value).map((b) => {
    const inserted = isRecord(b.inserted) ? b.inserted : {};
    return {
      qdev: typeof b.qdev === 'string' && b.qdev.length > 0 ? b.qdev : undefined,
      nodeName: typeof inserted['node-name'] === 'string' ? inserted['node-name'] : undefined,
    };
  });
}

/** Parses the `return` of `qom-list` into child names (e.g. object ids under `/objects`). */
export function parseQomList(value: unknown): string[] {
  return records(value).flatMap((p) => (typeof p.name === 'string' && typeof p.type === 'string' && p.type.startsWith('child<') ? [p.name] : []));
}

interface Pieces {
  deviceId?: string;
  deviceNode?: string;
  format?: BlockNodeInfo;
  protocol?: BlockNodeInfo;
  secretId?: string;
}

/**
 * Joins what QEMU reports into our volumes: devices from `query-block` (plus device ids from
 * `qom-list /machine/peripheral`, which also shows a device whose medium is gone), nodes from
 * `query-named-block-nodes`, secrets from `qom-list /objects`. Objects not named by us are ignored.
 */
export function buildAttachedVolumes(input: {
  readonly backends: readonly BlockBackendInfo[];
  readonly nodes: readonly BlockNodeInfo[];
  readonly objectIds: readonly string[];
  readonly peripheralIds: readonly string[];
}): AttachedVolume[] {
  const byVolume = new Map<string, Pieces>();
  const pieces = (id: string): Pieces => {
    let p = byVolume.get(id);
    if (p === undefined) byVolume.set(id, (p = {}));
    return p;
  };
  for (const dev of input.peripheralIds) {
    const id = parseDeviceId(dev);
    if (id !== undefined) pieces(id).deviceId = dev;
  }
  for (const b of input.backends) {
    const id = b.qdev === undefined ? undefined : parseDeviceId(b.qdev);
    if (id === undefined) continue;
    const p = pieces(id);
    p.deviceId = `stw-dev-${id}`;
    if (b.nodeName !== undefined) p.deviceNode = b.nodeName;
  }
  for (const n of input.nodes) {
    const parsed = parseNodeName(n.nodeName);
    if (parsed === undefined) continue;
    if (parsed.role === 'format') pieces(parsed.volumeId).format = n;
    else pieces(parsed.volumeId).protocol = n;
  }
  for (const o of input.objectIds) {
    const id = parseSecretId(o);
    if (id !== undefined) pieces(id).secretId = o;
  }
  return [...byVolume.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([volumeId, p]) => ({
      volumeId,
      state: p.deviceId !== undefined && p.format !== undefined && p.deviceNode === p.format.nodeName ? 'attached' : 'partial',
      deviceId: p.deviceId,
      nodeName: p.format?.nodeName,
      protocolNodeName: p.protocol?.nodeName,
      secretId: p.secretId,
      protocol: p.protocol?.driver,
      format: p.format?.driver,
      readOnly: p.format?.readOnly,
      sizeBytes: p.format?.sizeBytes,
    }));
}
