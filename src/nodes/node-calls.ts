import type { ReconcileReport } from '../drivers/sdk/types.js';
import type { CallTarget } from './node-protocol.js';

/** The JSON shape an argument of a remote call must have (checked by the node before the driver sees it). */
export type WireArgKind = 'object' | 'array' | 'string' | 'number' | 'object-or-null';

/**
 * Every driver method a node runs for the control plane, with the kinds of its arguments but the
 * AbortSignal (the node supplies the request's own signal). Anything else is refused with
 * FORBIDDEN before a driver is built: a node is not a general RPC endpoint. `data.locate` is not
 * here: a node's paths mean nothing to the control plane, its bytes stream (NODE_ROUTES.read/write).
 */
export const NODE_CALLABLE = {
  driver: {
    probe: [],
    createVolume: ['object'],
    deleteVolume: ['object'],
    resizeVolume: ['object', 'number'],
    listVolumes: [],
  },
  access: { grant: ['object', 'object'], revoke: ['object', 'object'], list: [] },
  snapshots: { create: ['object', 'string'], delete: ['object'] },
  revert: { revert: ['object', 'object'] },
  clones: { clone: ['object', 'object'] },
  exports: { reconcile: ['array', 'object-or-null'], drift: ['array'] },
  data: {},
} as const satisfies Record<CallTarget, Readonly<Record<string, readonly WireArgKind[]>>>;

/** A method name callable on `target`. */
export type CallableMethod<T extends CallTarget> = keyof (typeof NODE_CALLABLE)[T] & string;

/** True when `method` may be called on `target` remotely. */
export function isCallable(target: CallTarget, method: string): boolean {
  return Object.hasOwn(NODE_CALLABLE[target], method);
}

/** The argument kinds of a callable method. */
export function argKindsOf(target: CallTarget, method: string): readonly WireArgKind[] {
  const table: Readonly<Record<string, readonly WireArgKind[]>> = NODE_CALLABLE[target];
  return table[method] ?? [];
}

/**
 * ReconcileOptions on the wire. `knownVolumes` is a callback into the control plane's store, and
 * a node cannot call back; so a remote reconcile resolves it in (at most) two calls:
 *
 * 1. The first call carries `asked: []`: the node's driver asks about its orphan candidates, every
 *    one counts as known (nothing is removed as an orphan), and the answer lists them (`asked`).
 * 2. Only when there were some, the control plane resolves them with the caller's `knownVolumes`
 *    and calls again with `asked` and, of those, the `known` ones: the node then removes exactly
 *    the candidates the control plane confirmed it does not know. A candidate that appears only in
 *    the second pass (an export made in between) is again kept, and left for the next pass.
 *
 * So the node never removes an export the control plane did not confirm as unknown, as with a local
 * driver. `null` options mean the caller passed no `knownVolumes` (every candidate is an orphan).
 */
export interface WireReconcileOptions {
  /** Volume ids the control plane was asked about and answers for. */
  readonly asked: readonly string[];
  /** Of `asked`, the ids the control plane knows (their exports are not orphans). */
  readonly known: readonly string[];
}

/** What a node answers for `exports.reconcile`: the report, and the ids its driver asked about that `asked` did not answer. */
export interface WireReconcileAnswer {
  readonly report: ReconcileReport;
  readonly unanswered: readonly string[];
}
