import type { Expression, ExpressionBuilder, SqlBool } from 'kysely';
import { FINISHED_OPERATION_STATES } from '../core/states.js';
import type { Database, EventRow, OperationRow, RetentionSweepTable } from './schema.js';
import type { Executor } from './store.js';

/** A finished operation state (what retention may delete). */
export type FinishedOperationState = (typeof FINISHED_OPERATION_STATES)[number];

/** What the last sweep did, as stored (one row, upserted). */
export type RetentionSweepRow = RetentionSweepTable;

/** How many rows a table keeps, and the time of its oldest prunable one (null when none). */
export interface KeptRows {
  readonly kept: number;
  readonly oldestAt: string | null;
}

/** The key of the one `retention_sweeps` row. */
const LAST_SWEEP_ID = 'last';

/**
 * The rows retention may delete, and the record of its last sweep. Only finished operations go:
 * queued and running ones are never selected, whatever their age.
 *
 * Nothing references `operations.id` with a foreign key (claims.operation_id and events.operation_id
 * are plain columns, and idempotency keys keep their own copy of the answer), so a delete cannot
 * break a constraint. The one live row that may still point at a finished operation is a claim
 * still `held` (a crash between the operation's end and its claim's release): the claim sweeper
 * releases it using that operation's state, so such an operation is skipped until its claim is
 * settled, and goes in a later sweep. Events and settled claims that name a deleted operation are
 * history: they keep its id, and the archive keeps the operation.
 */
export class RetentionRepository {
  /** The oldest finished operations in `state` that finished before `before`, oldest first, at most `limit`. */
  async listPrunableOperations(db: Executor, state: FinishedOperationState, before: string, limit: number): Promise<OperationRow[]> {
    return db.selectFrom('operations').selectAll()
      .where('state', '=', state).where('finished_at', '<', before).where(noHeldClaim)
      .orderBy('finished_at').orderBy('id').limit(limit).execute();
  }

  /** Deletes these operations if they are still prunable (finished before `before`, no held claim); returns how many went. */
  async deleteOperations(db: Executor, ids: readonly string[], before: string): Promise<number> {
    if (ids.length === 0) return 0;
    const r = await db.deleteFrom('operations')
      .where('id', 'in', [...ids]).where('state', 'in', [...FINISHED_OPERATION_STATES]).where('finished_at', '<', before).where(noHeldClaim)
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /** The oldest events before `before`, oldest first, at most `limit`. */
  async listPrunableEvents(db: Executor, before: string, limit: number): Promise<EventRow[]> {
    return db.selectFrom('events').selectAll().where('at', '<', before).orderBy('at').orderBy('seq').limit(limit).execute();
  }

  /** Deletes these events (by sequence number) if they are still before `before`; returns how many went. */
  async deleteEvents(db: Executor, seqs: readonly number[], before: string): Promise<number> {
    if (seqs.length === 0) return 0;
    const r = await db.deleteFrom('events').where('seq', 'in', [...seqs]).where('at', '<', before).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /** Operations kept (every state), and when the oldest finished one finished. */
  async keptOperations(db: Executor): Promise<KeptRows> {
    const total = await db.selectFrom('operations').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    let oldestAt: string | null = null;
    // One indexed lookup per finished state (operations_state_finished) rather than a min() over both.
    for (const state of FINISHED_OPERATION_STATES) {
      const r = await db.selectFrom('operations').select('finished_at').where('state', '=', state).where('finished_at', 'is not', null)
        .orderBy('finished_at').limit(1).executeTakeFirst();
      const at = r?.finished_at ?? null;
      if (at !== null && (oldestAt === null || at < oldestAt)) oldestAt = at;
    }
    return { kept: Number(total.n), oldestAt };
  }

  /** Events kept, and the time of the oldest. */
  async keptEvents(db: Executor): Promise<KeptRows> {
    const total = await db.selectFrom('events').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    const oldest = await db.selectFrom('events').select('at').orderBy('at').limit(1).executeTakeFirst();
    return { kept: Number(total.n), oldestAt: oldest?.at ?? null };
  }

  /** Records what a sweep did, replacing the previous record. */
  async recordSweep(db: Executor, sweep: Omit<RetentionSweepRow, 'id'>): Promise<void> {
    await db.insertInto('retention_sweeps').values({ id: LAST_SWEEP_ID, ...sweep })
      .onConflict((oc) => oc.column('id').doUpdateSet(sweep)).execute();
  }

  /** What the last sweep (of any replica) did; undefined before the first. */
  async lastSweep(db: Executor): Promise<RetentionSweepRow | undefined> {
    return db.selectFrom('retention_sweeps').selectAll().where('id', '=', LAST_SWEEP_ID).executeTakeFirst();
  }
}

/** The operation has no `held` claim (a live row that still needs its state; see the class comment). */
function noHeldClaim(eb: ExpressionBuilder<Database, 'operations'>): Expression<SqlBool> {
  return eb.not(eb.exists(eb.selectFrom('claims').select('claims.id').whereRef('claims.operation_id', '=', 'operations.id').where('claims.state', '=', 'held')));
}
