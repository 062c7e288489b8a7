import { StowageError } from './errors.js';

/**
 * How a transitional state ends: the operation that owns it resumes it (after a crash, any worker
 * claims it once the lease expires), and when no operation is in charge at all the stale-state sweeper
 * moves the resource to `orphan` with the reason, never silently to a settled success state.
 */
export interface ResumePath<S extends string> {
  /** The operation kind (or worker) that finishes the state. */
  readonly operation: string;
  /** Where the resource goes when nothing owns it any more. */
  readonly orphan: S;
}

/** The part of a state table the machine compiles: which states each state may move to. */
export interface StateRow<S extends string> {
  readonly transitional: boolean;
  readonly resume: ResumePath<S> | null;
  readonly to: readonly S[];
}

/** A compiled table of allowed moves of one resource's states. */
export interface StateMachine<S extends string> {
  /** The resource, for messages (`volume`, `grant`, …). */
  readonly resource: string;
  /** Every state, in table order. */
  readonly states: readonly S[];
  /** True when `from → to` is allowed. Staying in the same state is always allowed (a rewrite of reason or details). */
  canMove(from: S, to: S): boolean;
  /** Throws INTERNAL naming the resource and the move unless `from → to` is allowed. */
  assertMove(from: S, to: S, id?: string): void;
  /** The states that may move to `to` (where a request that starts `to` may come from), in table order. */
  sourcesOf(to: S): readonly S[];
}

/** The states of `table` whose row passes `pick`, in table order (for SQL `in` lists and guards). */
export function statesWhere<S extends string, R>(table: Readonly<Record<S, R>>, pick: (row: R) => boolean): readonly S[] {
  return (Object.keys(table) as S[]).filter((s) => pick(table[s]));
}

/** Compiles a state table into a set of allowed moves, once, at module load. */
export function compileMachine<S extends string>(resource: string, table: Readonly<Record<S, StateRow<S>>>): StateMachine<S> {
  const states = Object.keys(table) as S[];
  const moves = new Set<string>();
  for (const from of states) for (const to of table[from].to) moves.add(`${from}>${to}`);
  const canMove = (from: S, to: S): boolean => from === to || moves.has(`${from}>${to}`);
  return Object.freeze({
    resource,
    states: Object.freeze([...states]),
    canMove,
    sourcesOf: (to: S): readonly S[] => states.filter((s) => s !== to && moves.has(`${s}>${to}`)),
    assertMove(from: S, to: S, id?: string): void {
      if (canMove(from, to)) return;
      const allowed = table[from].to;
      throw new StowageError('INTERNAL', `illegal ${resource} state move ${from} → ${to}${id ? ` (${id})` : ''}; from ${from} only ${allowed.length > 0 ? allowed.join(', ') : 'nothing'} is allowed`, {
        resource, id: id ?? null, from, to, allowed: [...allowed],
      });
    },
  });
}
