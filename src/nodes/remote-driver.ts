import { StowageError, isErrorCode } from '../core/errors.js';
import type { DriverSource, RemoteDriverFactory } from '../backends/driver-cache.js';
import { checkedDriver } from '../drivers/sdk/driver-contract.js';
import type { AccessPort, ClonePort, DataPort, ExportPort, RevertPort, SnapshotPort } from '../drivers/sdk/ports.js';
import type {
  BackendReport, BlockDriver, Capability, ConnectionInfo, DriverGrant, DriverHandle, DriverVolume, ReconcileOptions, ReconcileReport,
} from '../drivers/sdk/types.js';
import type { BackendKind } from '../core/states.js';
import { readJson } from '../store/json.js';
import type { CallableMethod, WireReconcileAnswer, WireReconcileOptions } from './node-calls.js';
import type { NodeChannels } from './node-channels.js';
import type { BackendSpec, CallTarget, NodeAnswer } from './node-protocol.js';
import { remoteDataStreams } from './remote-data.js';

/**
 * A backend's driver running on a storage node: the same BlockDriver contract, every method one
 * NodeCall over the node's pinned channel, so the core cannot tell it from a local one. Its scheme,
 * kind, capabilities and set of ports are those of `shape` (the driver this process builds from
 * the same URI, never called). Each call is made under the channel's epoch; an answer from another
 * epoch or boot of the node (it restarted or was re-synced while the call ran) is discarded as
 * NODE_UNREACHABLE, which operations retry; a driver error on the node comes back with its code.
 *
 * `localDir` is undefined: a node backend's directory is a path on that node, and the core's
 * path-overlap and capacity-sharing checks, which compare local paths, are not done across nodes
 * yet. `node` is the node's name once a call has learnt it (its id until then).
 */
export class RemoteBlockDriver implements BlockDriver {
  readonly scheme: string;
  readonly kind: BackendKind;
  readonly capabilities: ReadonlySet<Capability>;
  readonly localDir = undefined;
  readonly access?: AccessPort;
  readonly snapshots?: SnapshotPort;
  readonly revert?: RevertPort;
  readonly clones?: ClonePort;
  readonly data?: DataPort;
  readonly exports?: ExportPort;
  private readonly spec: BackendSpec;
  private nodeName: string | undefined;

  constructor(private readonly channels: NodeChannels, private readonly nodeId: string, backend: Omit<DriverSource, 'node_id'>, shape: BlockDriver) {
    this.scheme = shape.scheme;
    this.kind = shape.kind;
    this.capabilities = shape.capabilities;
    this.spec = { id: backend.id, name: backend.name, uri: backend.driver_uri, options: readJson<Record<string, string>>(backend.options, {}) };
    if (shape.access) this.access = this.accessPort();
    if (shape.snapshots) this.snapshots = this.snapshotPort();
    if (shape.revert) this.revert = { revert: (h, s, signal) => this.call('revert', 'revert', [h, s], signal) };
    if (shape.clones) this.clones = { clone: (src, req, signal) => this.call('clones', 'clone', [src, req], signal) };
    if (shape.data) this.data = this.dataPort();
    if (shape.exports) this.exports = { reconcile: (desired, signal, options) => this.reconcile(desired, signal, options), drift: (expected, signal) => this.call('exports', 'drift', [expected], signal) };
  }

  /** The node's name (its id until the first call has resolved the channel). */
  get node(): string {
    return this.nodeName ?? this.nodeId;
  }

  probe(signal: AbortSignal): Promise<BackendReport> {
    return this.call('driver', 'probe', [], signal);
  }

  createVolume(req: Parameters<BlockDriver['createVolume']>[0], signal: AbortSignal): Promise<DriverHandle> {
    return this.call('driver', 'createVolume', [req], signal);
  }

  async deleteVolume(handle: DriverHandle, signal: AbortSignal): Promise<void> {
    await this.call('driver', 'deleteVolume', [handle], signal);
  }

  async resizeVolume(handle: DriverHandle, sizeBytes: number, signal: AbortSignal): Promise<void> {
    await this.call('driver', 'resizeVolume', [handle, sizeBytes], signal);
  }

  listVolumes(signal: AbortSignal): Promise<DriverVolume[]> {
    return this.call('driver', 'listVolumes', [], signal);
  }

  private accessPort(): AccessPort {
    return {
      grant: (h, g, signal) => this.call<'access', ConnectionInfo>('access', 'grant', [h, g], signal),
      revoke: async (h, host, signal) => { await this.call('access', 'revoke', [h, host], signal); },
      list: (signal) => this.call<'access', DriverGrant[]>('access', 'list', [], signal),
    };
  }

  private snapshotPort(): SnapshotPort {
    return {
      create: (h, id, signal) => this.call<'snapshots', DriverHandle>('snapshots', 'create', [h, id], signal),
      delete: async (h, signal) => { await this.call('snapshots', 'delete', [h], signal); },
    };
  }

  private dataPort(): DataPort {
    const locate = (): never => {
      throw new StowageError('CAPABILITY_MISSING', `bytes of a backend on node ${this.node} stream; they have no path here`, { backend: this.spec.name, node: this.node });
    };
    return { locate, ...remoteDataStreams(this.channels, this.nodeId, this.spec) };
  }

  /** One reconcile pass, `options.knownVolumes` resolved here between at most two calls (see WireReconcileOptions). */
  private async reconcile(desired: Parameters<ExportPort['reconcile']>[0], signal: AbortSignal, options?: ReconcileOptions): Promise<ReconcileReport> {
    if (!options?.knownVolumes) return (await this.call<'exports', WireReconcileAnswer>('exports', 'reconcile', [desired, null], signal)).report;
    const first = await this.call<'exports', WireReconcileAnswer>('exports', 'reconcile', [desired, { asked: [], known: [] } satisfies WireReconcileOptions], signal);
    if (first.unanswered.length === 0) return first.report;
    const known = await options.knownVolumes(first.unanswered);
    const wire: WireReconcileOptions = { asked: first.unanswered, known: first.unanswered.filter((id) => known.has(id)) };
    const second = await this.call<'exports', WireReconcileAnswer>('exports', 'reconcile', [desired, wire], signal);
    return {
      restored: [...new Set([...first.report.restored, ...second.report.restored])],
      removed: [...first.report.removed, ...second.report.removed],
    };
  }

  /** Runs `target.method(...args, signal)` on the node and returns its value; throws as described on the class. */
  private async call<Tg extends CallTarget, T = unknown>(target: Tg, method: CallableMethod<Tg>, args: readonly unknown[], signal: AbortSignal): Promise<T> {
    signal.throwIfAborted();
    const ch = await this.channels.channel(this.nodeId, 'call');
    const name = ch.node.name;
    this.nodeName = name;
    const answer: unknown = await callCutShort(ch.lost, signal, (sig) => ch.client.call({ backend: this.spec, target, method, args }, ch.epoch, sig));
    if (!isAnswer(answer)) {
      throw new StowageError('NODE_UNREACHABLE', `node ${name} answered ${target}.${method} with something that is not a call answer`, { node: name, reason: 'unreachable' });
    }
    if (answer.epoch !== ch.epoch || (ch.node.boot_id !== null && answer.bootId !== ch.node.boot_id)) {
      throw new StowageError('NODE_UNREACHABLE', `node ${name} answered ${target}.${method} from epoch ${answer.epoch} (boot ${answer.bootId}), not the epoch ${ch.epoch} it was called in: it restarted or reconnected meanwhile, so the answer is discarded and the call will be retried`, { node: name, reason: 'unreachable', epoch: ch.epoch, answerEpoch: answer.epoch });
    }
    if (!answer.ok) {
      const code = isErrorCode(answer.error.code) ? answer.error.code : 'INTERNAL';
      throw new StowageError(code, `node ${name}: ${answer.error.message}`, { ...answer.error.details, node: name });
    }
    return answer.value as T;
  }
}

/**
 * Runs `fn` under the caller's signal combined with the channel's `lost` one; when `lost` ends the
 * call (the node went down or changed epoch) and the caller did not, throws lost's reason, a
 * NODE_UNREACHABLE the operation waits on, rather than the transport's abort error.
 */
export async function callCutShort<T>(lost: AbortSignal | undefined, signal: AbortSignal, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  if (!lost) return fn(signal);
  const unreachable = (): StowageError => (lost.reason instanceof StowageError ? lost.reason : new StowageError('NODE_UNREACHABLE', 'the node went down while the call ran; it will be retried', { reason: 'unreachable' }));
  if (lost.aborted) throw unreachable();
  try {
    return await fn(AbortSignal.any([signal, lost]));
  } catch (err) {
    if (lost.aborted && !signal.aborted) throw unreachable();
    throw err;
  }
}

function isAnswer(v: unknown): v is NodeAnswer {
  if (typeof v !== 'object' || v === null) return false;
  const a = v as Record<string, unknown>;
  if (typeof a.ok !== 'boolean' || typeof a.epoch !== 'number' || typeof a.bootId !== 'string') return false;
  if (a.ok) return true;
  const e = a.error as Record<string, unknown> | null | undefined;
  return typeof e === 'object' && e !== null && typeof e.message === 'string' && typeof e.details === 'object' && e.details !== null;
}

/** The DriverCache hook for backends on a node: a checked RemoteBlockDriver over `channels`. */
export class RemoteDrivers implements RemoteDriverFactory {
  constructor(private readonly channels: NodeChannels) {}

  create(backend: DriverSource, shape: BlockDriver): BlockDriver {
    if (backend.node_id === null) throw new StowageError('INTERNAL', `backend ${backend.name} has no node; it needs no remote driver`, { backend: backend.name });
    return checkedDriver(new RemoteBlockDriver(this.channels, backend.node_id, backend, shape));
  }
}
