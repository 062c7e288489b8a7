import { AsyncLocalStorage } from 'node:async_hooks';
import type { Config } from '../config/config.js';
import { StowageError } from '../core/errors.js';
import { SERVING_NODE_STATES, type NodeState } from '../core/states.js';
import type { Repositories } from '../store/repositories.js';
import type { NodeRow } from '../store/schema.js';
import type { Store } from '../store/store.js';
import type { ControlIdentities } from './control-identities.js';
import { NodeClient } from './node-client.js';
import { clockTime } from './node-errors.js';
import type { NodeChannel, NodeChannels } from './node-channels.js';

/** What a node in each state is waiting on, as the waiting reason says it (serving ones are not waited for). */
const WAITING_FOR = {
  ready: 'ready',
  draining: 'draining',
  enrolling: 'not enrolled yet',
  syncing: 'syncing',
  unreachable: 'unreachable',
  auth_failed: 'showed a key other than the one pinned',
  version_mismatch: 'speaks another protocol version',
} as const satisfies Record<NodeState, string>;

const SERVING: ReadonlySet<NodeState> = new Set(SERVING_NODE_STATES);

/** The node (and epoch) whose full sync runs in the current async context: its calls pass while it is `syncing`. */
const syncScope = new AsyncLocalStorage<{ readonly nodeId: string; readonly epoch: number }>();

/**
 * NodeChannels over the store: each call looks the node's row up (so a state change by the node
 * monitor, on any replica, counts at once), refuses a deleted node (NODE_GONE) and, for driver
 * calls, a node that is not serving (NODE_UNREACHABLE with a reason an operation shows while it
 * waits). One kept-alive NodeClient per node, rebuilt when the node moves or is re-keyed.
 */
export class StoreNodeChannels implements NodeChannels {
  private readonly clients = new Map<string, { key: string; client: NodeClient }>();
  /** Per node, the epoch its channels were handed out under and the controller that cuts their calls short. */
  private readonly inFlight = new Map<string, { epoch: number; controller: AbortController }>();

  constructor(
    private readonly store: Store,
    private readonly repos: Repositories,
    private readonly identities: ControlIdentities,
    private readonly config: Pick<Config, 'nodeCallTimeoutMs'>,
  ) {}

  async channel(nodeId: string, purpose: 'call' | 'heartbeat'): Promise<NodeChannel> {
    const node = await this.repos.nodes.findById(this.store.db, nodeId);
    if (!node) {
      this.forget(nodeId);
      throw new StowageError('NODE_GONE', `node ${nodeId} was deleted`, { node: nodeId });
    }
    if (purpose === 'call' && !SERVING.has(node.state) && !this.syncing(node)) throw waitingFor(node);
    if (node.cert_pem === null) {
      throw new StowageError('NODE_UNREACHABLE', `waiting for node ${node.name}: not enrolled yet`, { node: node.name, state: node.state, since: node.created_at, reason: 'not_enrolled' });
    }
    return { client: await this.clientFor(node, node.cert_pem), epoch: node.epoch, node, lost: this.lostSignal(node) };
  }

  /**
   * Aborts every call in flight to a node (with `reason`, a NODE_UNREACHABLE its operations wait
   * on): the node monitor found it down or opened a new epoch, so no answer is worth waiting for.
   * Later channels get a fresh signal.
   */
  abortCalls(nodeId: string, reason: StowageError): void {
    const cur = this.inFlight.get(nodeId);
    if (!cur) return;
    this.inFlight.delete(nodeId);
    cur.controller.abort(reason);
  }

  /**
   * Runs `fn` (a node's full sync) with that node's driver calls let through while it is
   * `syncing` in `epoch`: only inside `fn`'s async context, so operations still wait until it is ready.
   */
  duringSync<T>(nodeId: string, epoch: number, fn: () => Promise<T>): Promise<T> {
    return syncScope.run({ nodeId, epoch }, fn);
  }

  /** The abort signal of the node's current epoch; a newer epoch aborts the older one's calls. */
  private lostSignal(node: NodeRow): AbortSignal {
    const cur = this.inFlight.get(node.id);
    if (cur?.epoch === node.epoch) return cur.controller.signal;
    if (cur && cur.epoch < node.epoch) {
      cur.controller.abort(new StowageError('NODE_UNREACHABLE', `node ${node.name} moved to epoch ${node.epoch} while a call of epoch ${cur.epoch} ran; the call will be retried`, { node: node.name, reason: 'unreachable', epoch: node.epoch }));
    } else if (cur) {
      // A row read before the newer epoch opened: its calls would be refused anyway; no signal kept.
      return new AbortController().signal;
    }
    const controller = new AbortController();
    this.inFlight.set(node.id, { epoch: node.epoch, controller });
    return controller.signal;
  }

  /** Closes the kept-alive client of a node (deleted, or its row changed). */
  forget(nodeId: string): void {
    this.clients.get(nodeId)?.client.close();
    this.clients.delete(nodeId);
  }

  /** Closes every client (server stop). */
  closeAll(): void {
    for (const id of [...this.clients.keys()]) this.forget(id);
  }

  private syncing(node: NodeRow): boolean {
    const s = syncScope.getStore();
    return node.state === 'syncing' && s?.nodeId === node.id && s.epoch === node.epoch;
  }

  private async clientFor(node: NodeRow, certPem: string): Promise<NodeClient> {
    const key = `${node.name}|${node.address}|${certPem}`;
    const hit = this.clients.get(node.id);
    if (hit?.key === key) return hit.client;
    const identity = await this.identities.get('node-client');
    // Another call may have built it while the identity loaded.
    const again = this.clients.get(node.id);
    if (again?.key === key) return again.client;
    again?.client.close();
    const client = new NodeClient({ name: node.name, address: node.address, certPem }, identity, this.config.nodeCallTimeoutMs);
    this.clients.set(node.id, { key, client });
    return client;
  }
}

/** NODE_UNREACHABLE for a node that is not serving: "waiting for node sn1: unreachable since 12:03:10". */
export function waitingFor(node: NodeRow): StowageError {
  const since = node.unreachable_since ?? node.updated_at;
  const what = WAITING_FOR[node.state];
  const why = node.state_reason && node.state !== 'unreachable' ? ` (${node.state_reason})` : '';
  return new StowageError('NODE_UNREACHABLE', `waiting for node ${node.name}: ${what} since ${clockTime(since)}${why}`, {
    node: node.name, state: node.state, since, reason: node.state === 'auth_failed' ? 'auth_failed' : 'unreachable',
  });
}
