import type { Operation } from '../core/schemas/operation-schema.js';
import type { ErrorBody } from '../core/models.js';
import { ACTIVE_OPERATION_STATES, type OperationState } from '../core/states.js';
import { nowIso, readJson, writeJson } from './json.js';
import type { NewOperationRow, OperationRow } from './schema.js';
import type { Expression, ExpressionBuilder, SqlBool, Transaction } from 'kysely';
import type { Database } from './schema.js';
import type { Executor } from './store.js';

/** One finished step in an operation's journal. */
export interface StepRecord {
  name: string;
  at: string;
  note?: string;
}

/** Filters for operation lists (newest first). */
export interface OperationQuery {
  /** null: every tenant's (an admin's --all-tenants). */
  readonly tenantId: string | null;
  /** Only operations on these kinds of target (a non-admin sees only its tenant's resources'). */
  readonly targetTypes?: readonly string[];
  readonly state?: OperationState;
  readonly targetId?: string;
  readonly limit: number;
  /** created_at|id of the last item of the previous page. */
  readonly cursor?: string;
}

/** The durable operation journal. */
export class OperationRepository {
  async insert(db: Executor, row: NewOperationRow): Promise<void> {
    await db.insertInto('operations').values(row).execute();
  }

  async findById(db: Executor, id: string): Promise<OperationRow | undefined> {
    return db.selectFrom('operations').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async findByIdempotencyKey(db: Executor, tenantId: string, key: string): Promise<OperationRow | undefined> {
    return db.selectFrom('operations').selectAll().where('tenant_id', '=', tenantId).where('idempotency_key', '=', key).executeTakeFirst();
  }

  /** Unfinished operations on a target (a resource has at most one at a time). */
  async findActiveForTarget(db: Executor, targetId: string): Promise<OperationRow | undefined> {
    return db.selectFrom('operations').selectAll().where('target_id', '=', targetId).where('state', 'in', [...ACTIVE_OPERATION_STATES]).executeTakeFirst();
  }

  /** A tenant's unfinished operations (those filed under it), oldest first. */
  async listActiveOfTenant(db: Executor, tenantId: string): Promise<OperationRow[]> {
    return db.selectFrom('operations').selectAll().where('tenant_id', '=', tenantId).where('state', 'in', [...ACTIVE_OPERATION_STATES]).orderBy('created_at').orderBy('id').execute();
  }

  async list(db: Executor, q: OperationQuery): Promise<{ rows: OperationRow[]; nextCursor: string | null }> {
    let query = db.selectFrom('operations').selectAll();
    if (q.tenantId !== null) query = query.where('tenant_id', '=', q.tenantId);
    if (q.targetTypes) query = query.where('target_type', 'in', [...q.targetTypes]);
    if (q.state) query = query.where('state', '=', q.state);
    if (q.targetId) query = query.where('target_id', '=', q.targetId);
    if (q.cursor) {
      const [at = '', id = ''] = q.cursor.split('|');
      query = query.where((eb) => eb.or([eb('created_at', '<', at), eb.and([eb('created_at', '=', at), eb('id', '<', id)])]));
    }
    const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(q.limit + 1).execute();
    const page = rows.slice(0, q.limit);
    const last = page.at(-1);
    return { rows: page, nextCursor: rows.length > q.limit && last ? `${last.created_at}|${last.id}` : null };
  }

  /** Ids of operations a worker may run now: queued (and not waiting until later), or running with an expired lease. */
  async listRunnable(db: Executor, nowAt: string, limit: number): Promise<string[]> {
    const rows = await db.selectFrom('operations').select('id')
      .where(runnable(nowAt))
      .orderBy('created_at').limit(limit).execute();
    return rows.map((r) => r.id);
  }

  /**
   * Takes the lease on an operation if nobody holds a live one, and bumps its epoch (the fencing
   * token every later write of this worker is conditioned on). A conditional UPDATE is atomic on
   * both dialects, so two workers (or two replicas) can never both win.
   */
  async claim(db: Executor, id: string, owner: string, nowAt: string, leaseUntil: string): Promise<Lease | null> {
    return (await this.claimRow(db, id, owner, nowAt, leaseUntil))?.lease ?? null;
  }

  /** `claim` that also answers the claimed row as it now is (what a worker reads next anyway). */
  async claimRow(db: Executor, id: string, owner: string, nowAt: string, leaseUntil: string): Promise<{ lease: Lease; row: OperationRow } | null> {
    const r = await db.updateTable('operations')
      .set((eb) => ({
        state: 'running', lease_owner: owner, lease_expires_at: leaseUntil, updated_at: nowAt, not_before: null, waiting_reason: null,
        attempts: eb('attempts', '+', 1), lease_epoch: eb('lease_epoch', '+', 1),
      }))
      .where('id', '=', id)
      .where(runnable(nowAt))
      .returningAll()
      .executeTakeFirst();
    return r ? { lease: { owner, epoch: Number(r.lease_epoch) }, row: { ...r, lease_epoch: Number(r.lease_epoch) } } : null;
  }

  /** `claim` for callers that only need to know whether they won. */
  async tryClaim(db: Executor, id: string, owner: string, nowAt: string, leaseUntil: string): Promise<boolean> {
    return (await this.claim(db, id, owner, nowAt, leaseUntil)) !== null;
  }

  /** Extends the lease; false when another worker took it over (ours expired) or it finished. */
  async renewLease(db: Executor, id: string, lease: Lease, leaseUntil: string): Promise<boolean> {
    const r = await db.updateTable('operations').set({ lease_expires_at: leaseUntil }).where(held(id, lease)).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /**
   * Inside a transaction: true when `lease` still holds the operation, and then locks its row until
   * the transaction ends, so no takeover can commit between this check and the caller's writes.
   * PostgreSQL locks with FOR UPDATE; SQLite takes its single write lock with a no-op UPDATE (a
   * plain SELECT would leave a deferred transaction that fails to upgrade if another process wrote).
   */
  async lockIfHeld(trx: Transaction<Database>, dialect: 'sqlite' | 'postgres', id: string, lease: Lease): Promise<boolean> {
    if (dialect === 'postgres') {
      const row = await trx.selectFrom('operations').select('id').where(held(id, lease)).forUpdate().executeTakeFirst();
      return row !== undefined;
    }
    const r = await trx.updateTable('operations').set((eb) => ({ lease_epoch: eb.ref('lease_epoch') })).where(held(id, lease)).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Records a finished step (and the next current step) under our lease; false when it was lost. */
  async recordStep(db: Executor, id: string, lease: Lease, done: StepRecord[], next: string | null): Promise<boolean> {
    const r = await db.updateTable('operations').set({ steps_done: writeJson(done), step: next, updated_at: nowIso() }).where(held(id, lease)).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Stores progress under our lease; false when it was lost. */
  async setProgress(db: Executor, id: string, lease: Lease, progress: number): Promise<boolean> {
    const r = await db.updateTable('operations').set({ progress, updated_at: nowIso() }).where(held(id, lease)).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Replaces the operation's input under our lease; false when it was lost. */
  async setInput(db: Executor, id: string, lease: Lease, input: Record<string, unknown>): Promise<boolean> {
    const r = await db.updateTable('operations').set({ input: writeJson(input), updated_at: nowIso() }).where(held(id, lease)).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /**
   * Gives a waiting operation back (a node it needs does not answer): queued again, not to be
   * claimed before `notBefore`, saying why, its lease dropped so the worker takes other work. Its
   * steps done and input stay; false when the lease was lost.
   */
  async releaseWaiting(db: Executor, id: string, lease: Lease, notBefore: string, reason: string): Promise<boolean> {
    const r = await db.updateTable('operations').set({
      state: 'queued', lease_owner: null, lease_expires_at: null, not_before: notBefore, waiting_reason: reason, updated_at: nowIso(),
    }).where(held(id, lease)).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Ends the operation under our lease (and drops the lease); false when it was lost. */
  async finish(db: Executor, id: string, lease: Lease, state: 'succeeded' | 'failed', result: Record<string, unknown> | null, error: ErrorBody | null): Promise<boolean> {
    const at = nowIso();
    const r = await db.updateTable('operations').set({
      state, result: result ? writeJson(result) : null, error: error ? writeJson(error) : null,
      lease_owner: null, lease_expires_at: null, updated_at: at, finished_at: at, step: null,
      ...(state === 'succeeded' ? { progress: 1 } : {}),
    }).where(held(id, lease)).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
}

/** Who holds an operation: the worker and the epoch its claim got. */
export interface Lease {
  readonly owner: string;
  readonly epoch: number;
}

/** What a worker may claim at `nowAt`: queued and not waiting past it, or running with an expired lease (ISO times compare as text on both dialects). */
function runnable(nowAt: string): (eb: ExpressionBuilder<Database, 'operations'>) => Expression<SqlBool> {
  return (eb) => eb.or([
    eb.and([eb('state', '=', 'queued'), eb.or([eb('not_before', 'is', null), eb('not_before', '<=', nowAt)])]),
    eb.and([eb('state', '=', 'running'), eb.or([eb('lease_expires_at', 'is', null), eb('lease_expires_at', '<', nowAt)])]),
  ]);
}

/** The operation, while `lease` still holds it (running, same owner and epoch). */
function held(id: string, lease: Lease): (eb: ExpressionBuilder<Database, 'operations'>) => Expression<SqlBool> {
  return (eb) => eb.and([eb('id', '=', id), eb('state', '=', 'running'), eb('lease_owner', '=', lease.owner), eb('lease_epoch', '=', lease.epoch)]);
}

/** Maps a row to the API model. */
export function toOperation(r: OperationRow): Operation {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    kind: r.kind,
    targetType: r.target_type,
    targetId: r.target_id,
    state: r.state,
    step: r.step,
    stepsDone: readJson<StepRecord[]>(r.steps_done, []),
    attempts: r.attempts,
    progress: r.progress,
    result: readJson<Record<string, unknown> | null>(r.result, null),
    error: readJson<ErrorBody | null>(r.error, null),
    actor: r.actor,
    idempotencyKey: r.idempotency_key,
    waitingReason: r.waiting_reason,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    finishedAt: r.finished_at,
  };
}
