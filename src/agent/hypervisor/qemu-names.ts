import { StowageError } from '../../core/errors.js';

/**
 * The names the agent gives QEMU objects for one volume. QEMU limits node names to 31 characters,
 * so the protocol node is `stw-<volumeId>-p` (a `-proto` suffix would not fit a 24-character id).
 */
export interface VolumeQemuNames {
  /** Format (raw/qcow2) node the device uses: `stw-<volumeId>`. */
  readonly node: string;
  /** Protocol (iscsi/file) node under it: `stw-<volumeId>-p`. */
  readonly protocolNode: string;
  /** The scsi-hd device: `stw-dev-<volumeId>`. */
  readonly device: string;
  /** The secret object holding the CHAP secret: `stw-<volumeId>-sec`. */
  readonly secret: string;
}

/**
 * Volume ids the agent accepts: the Stowage id shape `<prefix>-<20 base32 chars>` (src/core/ids.ts),
 * with a prefix of at most 4 letters so that `stw-<id>-p` fits QEMU's 31-character node names.
 */
export const AGENT_VOLUME_ID_RE = /^[a-z]{2,4}-[a-z2-7]{20}$/;

/** QEMU's longest node name (`char node_name[32]`). */
export const QEMU_NODE_NAME_MAX_CHARS = 31;

const NODE_RE = /^stw-([a-z]{2,4}-[a-z2-7]{20})(-p)?$/;
const DEVICE_RE = /^stw-dev-([a-z]{2,4}-[a-z2-7]{20})$/;
const SECRET_RE = /^stw-([a-z]{2,4}-[a-z2-7]{20})-sec$/;

/** Throws VALIDATION_FAILED unless `volumeId` has the id shape and its node names fit QEMU's limit. */
export function assertAgentVolumeId(volumeId: string): void {
  if (!AGENT_VOLUME_ID_RE.test(volumeId)) {
    throw new StowageError('VALIDATION_FAILED', `agent: ${JSON.stringify(volumeId)} is not a volume id (expected <prefix>-<20 base32 chars>)`, { volumeId });
  }
}

/** The QEMU names for `volumeId`; throws VALIDATION_FAILED on a malformed id. */
export function qemuNamesFor(volumeId: string): VolumeQemuNames {
  assertAgentVolumeId(volumeId);
  return { node: `stw-${volumeId}`, protocolNode: `stw-${volumeId}-p`, device: `stw-dev-${volumeId}`, secret: `stw-${volumeId}-sec` };
}

/** Which of our nodes `nodeName` is, or undefined when it is not ours. */
export function parseNodeName(nodeName: string): { readonly volumeId: string; readonly role: 'format' | 'protocol' } | undefined {
  const m = NODE_RE.exec(nodeName);
  if (m?.[1] === undefined) return undefined;
  return { volumeId: m[1], role: m[2] === undefined ? 'format' : 'protocol' };
}

/** The volume id of one of our device ids (a bare id or a `/machine/peripheral/<id>/…` QOM path), or undefined. */
export function parseDeviceId(qdev: string): string | undefined {
  const prefix = '/machine/peripheral/';
  const id = qdev.startsWith(prefix) ? (qdev.slice(prefix.length).split('/')[0] ?? '') : qdev;
  return DEVICE_RE.exec(id)?.[1];
}

/** The volume id of one of our secret object ids, or undefined. */
export function parseSecretId(objectId: string): string | undefined {
  return SECRET_RE.exec(objectId)?.[1];
}
