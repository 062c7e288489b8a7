import path from 'node:path';
import { StowageError } from '../../core/errors.js';
import type { VolumeFormat } from '../../core/states.js';
import { silentLogger, type AgentLogger } from '../agent-logger.js';
import { QmpClient, type ExecuteOptions } from '../qmp-client.js';
import { isQmpError, QmpError } from '../qmp-error.js';
import { buildAttachedVolumes, parseNamedBlockNodes, parseQomList, parseQueryBlock, type AttachedVolume } from './attached-volumes.js';
import { qemuNamesFor, type VolumeQemuNames } from './qemu-names.js';
import { isMigrationFinal, parseMigrationInfo, parseVmStatus, type MigrationInfo, type VmStatus } from './qemu-status.js';

/** Attach an iSCSI LUN through QEMU's userspace initiator (libiscsi). */
export interface IscsiAttachRequest {
  readonly volumeId: string;
  /** `host:port` of the target portal. */
  readonly portal: string;
  readonly iqn: string;
  readonly lun: number;
  readonly chapUser?: string;
  /** Passed to QEMU only inside a `secret` object; never logged or put in errors. */
  readonly chapSecret?: string;
  /** Initiator IQN QEMU logs in with (targets may bind it). */
  readonly initiatorName: string;
  readonly readOnly: boolean;
}

/** Attach a local image file (dir backends). */
export interface FileAttachRequest {
  readonly volumeId: string;
  /** Absolute path of the image. */
  readonly path: string;
  readonly format: VolumeFormat;
  readonly readOnly: boolean;
}

/** Tunables of one VM handle. */
export interface QemuVmOptions {
  /** The VM's name (for logs and errors). */
  readonly name: string;
  readonly client: QmpClient;
  readonly logger?: AgentLogger;
  /** SCSI bus our disks are plugged into (default `scsi0.0`, the virtio-scsi controller `scsi0`). */
  readonly scsiBus?: string;
  /** How long detach waits for the device to go away (default 10 000 ms). */
  readonly unplugTimeoutMs?: number;
}

/** Options for waitMigration. */
export interface WaitMigrationOptions {
  /** Give up after this many milliseconds (default 120 000). */
  readonly timeoutMs?: number;
  /** Interval between `query-migrate` polls (default 100 ms). */
  readonly pollMs?: number;
  readonly signal?: AbortSignal;
}

const PORTAL_RE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;
const IQN_RE = /^(?:iqn\.\d{4}-\d{2}\.[A-Za-z0-9.-]+(?::[A-Za-z0-9.:_-]+)?|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16,32})$/;
const CHAP_USER_RE = /^[A-Za-z0-9._@:-]{1,255}$/;
const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });

function invalid(message: string, details: Record<string, unknown>): StowageError {
  return new StowageError('VALIDATION_FAILED', message, details);
}

/** Validates an iSCSI attach request; throws VALIDATION_FAILED naming the bad field (never the secret). */
export function validateIscsiRequest(req: IscsiAttachRequest): void {
  if (!PORTAL_RE.test(req.portal)) throw invalid(`agent: bad iSCSI portal ${JSON.stringify(req.portal)} (expected host:port)`, { portal: req.portal });
  if (!IQN_RE.test(req.iqn)) throw invalid(`agent: bad target IQN ${JSON.stringify(req.iqn)}`, { iqn: req.iqn });
  if (!IQN_RE.test(req.initiatorName)) throw invalid(`agent: bad initiator name ${JSON.stringify(req.initiatorName)}`, { initiatorName: req.initiatorName });
  if (!Number.isInteger(req.lun) || req.lun < 0 || req.lun > 16383) throw invalid(`agent: bad LUN ${String(req.lun)}`, { lun: req.lun });
  if ((req.chapUser === undefined) !== (req.chapSecret === undefined)) throw invalid('agent: CHAP needs both a user and a secret', { volumeId: req.volumeId });
  if (req.chapUser !== undefined && !CHAP_USER_RE.test(req.chapUser)) throw invalid('agent: bad CHAP user name', { volumeId: req.volumeId });
  if (req.chapSecret !== undefined && (req.chapSecret.length === 0 || req.chapSecret.includes('\0'))) throw invalid('agent: bad CHAP secret', { volumeId: req.volumeId });
}

/** Validates a file attach request: an absolute, normalized path without NUL. */
export function validateFileRequest(req: FileAttachRequest): void {
  if (!path.isAbsolute(req.path) || path.normalize(req.path) !== req.path || req.path.includes('\0')) {
    throw invalid(`agent: image path ${JSON.stringify(req.path)} must be absolute and normalized`, { path: req.path });
  }
  if (req.format !== 'raw' && req.format !== 'qcow2') throw invalid(`agent: unknown image format ${JSON.stringify(req.format)}`, { format: String(req.format) });
}

/**
 * Block-device and migration operations on one QEMU VM over QMP. Attach builds secret → protocol
 * node → format node → scsi-hd device; detach tears them down in reverse. Both are idempotent and
 * complete an earlier, interrupted run. The connection is reopened when it was lost.
 */
export class QemuVm {
  readonly name: string;
  readonly client: QmpClient;
  private readonly log: AgentLogger;
  private readonly scsiBus: string;
  private readonly unplugTimeoutMs: number;
  /** Tail of the queue of operations per volume: attach and detach of one volume never interleave. */
  private readonly volumeQueues = new Map<string, Promise<void>>();

  constructor(options: QemuVmOptions) {
    this.name = options.name;
    this.client = options.client;
    this.log = options.logger ?? silentLogger;
    this.scsiBus = options.scsiBus ?? 'scsi0.0';
    this.unplugTimeoutMs = options.unplugTimeoutMs ?? 10_000;
  }

  /** Connects to the VM's QMP socket; throws BACKEND_UNAVAILABLE when it cannot. */
  static async open(name: string, socketPath: string, options: { logger?: AgentLogger; scsiBus?: string; unplugTimeoutMs?: number } = {}): Promise<QemuVm> {
    const client = await QmpClient.connect({ socketPath, ...(options.logger ? { logger: options.logger } : {}) });
    return new QemuVm({ name, client, ...options });
  }

  /** Closes the QMP connection. */
  async close(): Promise<void> {
    await this.client.close();
  }

  /** Attaches an iSCSI LUN as a scsi-hd disk; returns it as QEMU reports it. Idempotent. */
  async attachIscsi(req: IscsiAttachRequest, signal?: AbortSignal): Promise<AttachedVolume> {
    validateIscsiRequest(req);
    const names = qemuNamesFor(req.volumeId);
    const secrets = req.chapSecret === undefined ? [] : [req.chapSecret];
    const proto: Record<string, unknown> = {
      driver: 'iscsi',
      'node-name': names.protocolNode,
      transport: 'tcp',
      portal: req.portal,
      target: req.iqn,
      lun: req.lun,
      'initiator-name': req.initiatorName,
      'read-only': req.readOnly,
    };
    if (req.chapUser !== undefined) {
      proto.user = req.chapUser;
      proto['password-secret'] = names.secret;
    }
    return this.exclusive(req.volumeId, () => this.attach(req.volumeId, names, { protocol: 'iscsi', protocolArgs: proto, format: 'raw', readOnly: req.readOnly, secret: req.chapSecret, secrets }, signal));
  }

  /** Attaches a local image file as a scsi-hd disk; returns it as QEMU reports it. Idempotent. */
  async attachFile(req: FileAttachRequest, signal?: AbortSignal): Promise<AttachedVolume> {
    validateFileRequest(req);
    const names = qemuNamesFor(req.volumeId);
    const proto = { driver: 'file', 'node-name': names.protocolNode, filename: req.path, 'read-only': req.readOnly };
    return this.exclusive(req.volumeId, () => this.attach(req.volumeId, names, { protocol: 'file', protocolArgs: proto, format: req.format, readOnly: req.readOnly, secret: undefined, secrets: [] }, signal));
  }

  /**
   * Detaches a volume: device_del (waiting for DEVICE_DELETED), blockdev-del of the format and
   * protocol nodes, object-del of the secret. Pieces already gone are skipped, so a retry after a
   * crash at any point completes the detach. Throws TIMEOUT when the device does not go away.
   */
  async detach(volumeId: string, signal?: AbortSignal): Promise<void> {
    const names = qemuNamesFor(volumeId);
    await this.exclusive(volumeId, () => this.detachPieces(volumeId, names, signal));
  }

  private async detachPieces(volumeId: string, names: VolumeQemuNames, signal: AbortSignal | undefined): Promise<void> {
    await this.ensureConnected();
    await this.unplugDevice(names.device, signal);
    await this.deleteIfPresent('blockdev-del', { 'node-name': names.node }, () => this.nodeExists(names.node, signal), signal);
    await this.deleteIfPresent('blockdev-del', { 'node-name': names.protocolNode }, () => this.nodeExists(names.protocolNode, signal), signal);
    await this.deleteIfPresent('object-del', { id: names.secret }, () => this.objectExists(names.secret, signal), signal);
    this.log.info({ vm: this.name, volumeId }, 'volume detached');
  }

  /** Every volume with any of our pieces in this VM, as QEMU really has it. */
  async listAttached(signal?: AbortSignal): Promise<AttachedVolume[]> {
    await this.ensureConnected();
    const [backends, nodes, objects, peripherals] = await Promise.all([
      this.run('query-block', undefined, { signal }),
      this.run('query-named-block-nodes', { flat: true }, { signal }),
      this.run('qom-list', { path: '/objects' }, { signal }),
      this.run('qom-list', { path: '/machine/peripheral' }, { signal }),
    ]);
    return buildAttachedVolumes({
      backends: parseQueryBlock(backends),
      nodes: parseNamedBlockNodes(nodes),
      objectIds: parseQomList(objects),
      peripheralIds: parseQomList(peripherals),
    });
  }

  /** The VM's run state (`query-status`). */
  async status(signal?: AbortSignal): Promise<VmStatus> {
    await this.ensureConnected();
    return parseVmStatus(await this.run('query-status', undefined, { signal }));
  }

  /** Starts or resumes the vCPUs (`cont`). */
  async cont(signal?: AbortSignal): Promise<void> {
    await this.ensureConnected();
    await this.run('cont', undefined, { signal });
  }

  /** On a VM started with `-incoming defer`: listens for the incoming migration on `uri` (e.g. `tcp:127.0.0.1:4444`). */
  async migrateIncoming(uri: string, signal?: AbortSignal): Promise<void> {
    await this.ensureConnected();
    await this.run('migrate-incoming', { uri }, { signal });
  }

  /** Starts migrating this VM to `uri`; follow with waitMigration. */
  async migrate(uri: string, signal?: AbortSignal): Promise<void> {
    await this.ensureConnected();
    await this.run('migrate', { uri }, { signal });
  }

  /** The current `query-migrate` state. */
  async migrationInfo(signal?: AbortSignal): Promise<MigrationInfo> {
    await this.ensureConnected();
    return parseMigrationInfo(await this.run('query-migrate', undefined, { signal }));
  }

  /**
   * Polls `query-migrate` until the migration completes; throws DRIVER_FAILED when it failed or
   * was cancelled (with QEMU's reason) and TIMEOUT when it is still running after `timeoutMs`.
   */
  async waitMigration(options: WaitMigrationOptions = {}): Promise<MigrationInfo> {
    const { timeoutMs = 120_000, pollMs = 100, signal } = options;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = await this.migrationInfo(signal);
      if (info.status === 'completed') return info;
      if (isMigrationFinal(info.status)) {
        throw new StowageError('DRIVER_FAILED', `migration of VM ${this.name} ${info.status}${info.errorDesc ? `: ${info.errorDesc}` : ''}`, { vm: this.name, status: info.status });
      }
      if (signal?.aborted) throw new StowageError('TIMEOUT', `waiting for the migration of VM ${this.name} was cancelled`, { vm: this.name, cancelled: true });
      if (Date.now() >= deadline) throw new StowageError('TIMEOUT', `migration of VM ${this.name} still ${info.status} after ${String(timeoutMs)} ms`, { vm: this.name, status: info.status, timeoutMs });
      await sleep(pollMs, signal);
    }
  }

  private async attach(
    volumeId: string,
    names: VolumeQemuNames,
    spec: { protocol: string; protocolArgs: Record<string, unknown>; format: VolumeFormat; readOnly: boolean; secret: string | undefined; secrets: readonly string[] },
    signal: AbortSignal | undefined,
  ): Promise<AttachedVolume> {
    await this.ensureConnected();
    const existing = (await this.listAttached(signal)).find((v) => v.volumeId === volumeId);
    if (existing?.state === 'attached') {
      if (existing.protocol === spec.protocol && existing.readOnly === spec.readOnly) return existing;
      throw new StowageError('INVALID_STATE', `volume ${volumeId} is already attached to VM ${this.name} as ${existing.protocol ?? '?'} (${existing.readOnly === true ? 'ro' : 'rw'})`, { vm: this.name, volumeId });
    }
    if (existing !== undefined) {
      this.log.warn({ vm: this.name, volumeId }, 'found a half-attached volume; cleaning it up before attaching');
      await this.detachPieces(volumeId, names, signal);
    }
    const { secrets } = spec;
    try {
      if (spec.secret !== undefined) {
        await this.run('object-add', { 'qom-type': 'secret', id: names.secret, data: spec.secret, format: 'raw' }, { signal, secrets });
      }
      await this.run('blockdev-add', spec.protocolArgs, { signal, secrets, timeoutMs: 60_000 });
      await this.run('blockdev-add', { driver: spec.format, 'node-name': names.node, file: names.protocolNode, 'read-only': spec.readOnly, discard: 'unmap' }, { signal, secrets });
      await this.run('device_add', { driver: 'scsi-hd', id: names.device, drive: names.node, bus: this.scsiBus, serial: volumeId }, { signal, secrets });
    } catch (err) {
      this.log.warn({ vm: this.name, volumeId, err: err instanceof Error ? err.message : String(err) }, 'attach failed; rolling back');
      await this.detachPieces(volumeId, names, undefined).catch((rollbackErr: unknown) => {
        this.log.error({ vm: this.name, volumeId, err: rollbackErr instanceof Error ? rollbackErr.message : String(rollbackErr) }, 'rollback of a failed attach failed; a later detach will finish it');
      });
      throw err;
    }
    const attached = (await this.listAttached(signal)).find((v) => v.volumeId === volumeId);
    if (attached?.state !== 'attached') {
      throw new StowageError('DRIVER_FAILED', `volume ${volumeId} does not show up as attached in VM ${this.name} after device_add`, { vm: this.name, volumeId });
    }
    this.log.info({ vm: this.name, volumeId, protocol: spec.protocol, readOnly: spec.readOnly }, 'volume attached');
    return attached;
  }

  private async exclusive<T>(volumeId: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.volumeQueues.get(volumeId) ?? Promise.resolve();
    const run = previous.then(fn);
    const tail = run.then(() => undefined, () => undefined);
    this.volumeQueues.set(volumeId, tail);
    try {
      return await run;
    } finally {
      if (this.volumeQueues.get(volumeId) === tail) this.volumeQueues.delete(volumeId);
    }
  }

  private async unplugDevice(deviceId: string, signal: AbortSignal | undefined): Promise<void> {
    const waiter = this.client.eventWaiter('DEVICE_DELETED', (e) => e.data.device === deviceId);
    try {
      try {
        await this.run('device_del', { id: deviceId }, { signal });
      } catch (err) {
        if (isQmpError(err, 'DeviceNotFound')) return;
        // e.g. an unplug already in progress: fall through and wait for the device to go.
        if (!(err instanceof QmpError)) throw err;
        this.log.debug({ vm: this.name, deviceId, err: err.message }, 'device_del refused; waiting for the device to go');
      }
      const deadline = Date.now() + this.unplugTimeoutMs;
      for (;;) {
        try {
          await waiter.wait(Math.min(250, Math.max(1, deadline - Date.now())), signal);
          return;
        } catch (err) {
          if (!(err instanceof StowageError && err.code === 'TIMEOUT') || err.details.cancelled === true) throw err;
        }
        if (!(await this.deviceExists(deviceId, signal))) return;
        if (Date.now() >= deadline) {
          throw new StowageError('TIMEOUT', `device ${deviceId} of VM ${this.name} was not unplugged within ${String(this.unplugTimeoutMs)} ms`, { vm: this.name, deviceId });
        }
      }
    } finally {
      waiter.dispose();
    }
  }

  private async deleteIfPresent(command: 'blockdev-del' | 'object-del', args: Record<string, unknown>, stillThere: () => Promise<boolean>, signal: AbortSignal | undefined): Promise<void> {
    try {
      await this.run(command, args, { signal });
    } catch (err) {
      if (err instanceof QmpError && !(await stillThere())) return;
      throw err;
    }
  }

  private async deviceExists(deviceId: string, signal: AbortSignal | undefined): Promise<boolean> {
    return parseQomList(await this.run('qom-list', { path: '/machine/peripheral' }, { signal })).includes(deviceId);
  }

  private async nodeExists(nodeName: string, signal: AbortSignal | undefined): Promise<boolean> {
    return parseNamedBlockNodes(await this.run('query-named-block-nodes', { flat: true }, { signal })).some((n) => n.nodeName === nodeName);
  }

  private async objectExists(objectId: string, signal: AbortSignal | undefined): Promise<boolean> {
    return parseQomList(await this.run('qom-list', { path: '/objects' }, { signal })).includes(objectId);
  }

  private run(command: string, args: Record<string, unknown> | undefined, options: { signal: AbortSignal | undefined; secrets?: readonly string[]; timeoutMs?: number }): Promise<unknown> {
    const opts: ExecuteOptions = {
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.secrets ? { secrets: options.secrets } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    };
    return this.client.execute(command, args, opts);
  }

  private async ensureConnected(): Promise<void> {
    if (this.client.connected) return;
    this.log.info({ vm: this.name, socket: this.client.socketPath }, 'QMP connection lost; reconnecting');
    await this.client.reconnect();
  }
}
