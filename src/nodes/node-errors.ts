import { StowageError } from '../core/errors.js';

/**
 * True for NODE_UNREACHABLE: the storage node a call needs does not answer (down, partitioned,
 * re-keyed, syncing). Operations wait for it (the engine requeues them with backoff); code that
 * would otherwise swallow or translate a driver error must let this one through.
 */
export function isNodeWait(err: unknown): boolean {
  return err instanceof StowageError && err.code === 'NODE_UNREACHABLE';
}

/**
 * True for NODE_GONE: the node was deleted, so nothing is left on it to undo. Compensations treat
 * it as done; steps fail with it (not retryable).
 */
export function isNodeGone(err: unknown): boolean {
  return err instanceof StowageError && err.code === 'NODE_GONE';
}

/** The UTC time of day of an ISO timestamp (HH:MM:SS), as waiting reasons show it. */
export function clockTime(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().slice(11, 19);
}

/**
 * Why a backend on a node that is not serving is offline: "node sn1 unreachable since 12:03:10".
 * The node monitor and the backend probe say it the same way, so neither undoes the other.
 */
export function nodeDownReason(node: string, state: string, sinceIso: string): string {
  return `node ${node} ${state.replace('_', ' ')} since ${clockTime(sinceIso)}`;
}

/** The down-reason of a NODE_UNREACHABLE error raised for a node's state (details node/state/since), else undefined. */
export function nodeDownReasonOf(err: unknown): { state: string; reason: string } | undefined {
  if (!isNodeWait(err)) return undefined;
  const d = (err as StowageError).details;
  if (typeof d.node !== 'string' || typeof d.state !== 'string' || typeof d.since !== 'string') return undefined;
  return { state: d.state, reason: nodeDownReason(d.node, d.state, d.since) };
}
