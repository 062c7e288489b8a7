import type { NodeRow } from '../store/schema.js';
import type { NodeClient } from './node-client.js';

/** One node's channel as a caller gets it: the client, and the epoch calls are made under. */
export interface NodeChannel {
  readonly client: NodeClient;
  readonly epoch: number;
  readonly node: NodeRow;
  /**
   * Aborted when the node monitor finds the node down or opens a new epoch: a call in flight under
   * this channel then stops at once (its reason a NODE_UNREACHABLE to wait on) instead of hanging
   * until nodeCallTimeoutMs. Absent for channels that cannot be cut short.
   */
  readonly lost?: AbortSignal;
}

/**
 * How the control plane reaches its nodes (implemented over the store and the `node-client`
 * identity; one kept-alive client per node, rebuilt when the node is re-keyed or moves).
 * `channel` throws NODE_GONE when the node was deleted and NODE_UNREACHABLE, with the reason and
 * since when, when the node is not serving (unreachable, auth_failed, version_mismatch, enrolling).
 */
export interface NodeChannels {
  channel(nodeId: string, purpose: 'call' | 'heartbeat'): Promise<NodeChannel>;
}
