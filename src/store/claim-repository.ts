import { newId, type BackendId } from '../core/ids.js';
import { statesWhere } from '../core/state-machine.js';
import { ACTIVE_OPERATION_STATES, CLAIM_STATE_TABLE, CLAIM_STATES, FINISHED_OPERATION_STATES, type ClaimState } from '../core/states.js';
import { nowIso } from './json.js';
import type { ClaimRow } from './schema.js';
import type { Executor } from './store.js';

/** The states of a capacity claim (the table in `core/states.ts` says what each means). */
export { CLAIM_STATES, type ClaimState };

/** Claims that are settled (committed or released) and may be purged. */
const SETTLED_CLAIM_STATES = statesWhere(CLAIM_STATE_TABLE, (s) => !s.transitional);

/** How long a held claim survives without a live operation before the sweeper may release it. */
export const CLAIM_TTL_MS = 15 * 60_000;

/** What a caller holds capacity for. */
export interface NewClaim {
  readonly backendId: BackendId;
  readonly resourceType: string;
  readonly resourceId: string;
  readonly operationId: string | null;
  readonly bytes: number;
  readonly ttlMs?: number;
}

/** Capacity claims: held in the transaction that records a placement, then committed or released. */
export class ClaimRepository {
  /** Records a held claim; call in the same transaction as the placement decision. */
  async hold(db: Executor, c: NewClaim): Promise<ClaimRow> {
    const at = Date.now();
    const row: ClaimRow = {
      id: newId('claim'), backend_id: c.backendId, resource_type: c.resourceType, resource_id: c.resourceId,
      operation_id: c.operationId, bytes: c.bytes, state: 'held',
      expires_at: new Date(at + (c.ttlMs ?? CLAIM_TTL_MS)).toISOString(), created_at: new Date(at).toISOString(),
    };
    await db.insertInto('claims').values(row).execute();
    return row;
  }

  /** Commits every held claim of a resource (optionally only those of one operation); returns how many. */
  async commit(db: Executor, resourceId: string, operationId?: string): Promise<number> {
    return this.finish(db, resourceId, 'committed', operationId);
  }

  /** Releases every held claim of a resource (optionally only those of one operation); returns how many. */
  async release(db: Executor, resourceId: string, operationId?: string): Promise<number> {
    return this.finish(db, resourceId, 'released', operationId);
  }

  /** Releases one claim by id if it is still held. */
  async releaseById(db: Executor, id: string): Promise<boolean> {
    const r = await db.updateTable('claims').set({ state: 'released' }).where('id', '=', id).where('state', '=', 'held').executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async findById(db: Executor, id: string): Promise<ClaimRow | undefined> {
    return db.selectFrom('claims').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Every claim of a resource, oldest first. */
  async listForResource(db: Executor, resourceId: string): Promise<ClaimRow[]> {
    return db.selectFrom('claims').selectAll().where('resource_id', '=', resourceId).orderBy('created_at').orderBy('id').execute();
  }

  /** Held bytes per backend (what placement must still keep free). */
  async heldBytesByBackend(db: Executor, ids?: readonly BackendId[]): Promise<Map<BackendId, number>> {
    let q = db.selectFrom('claims').select((eb) => ['backend_id', eb.fn.sum<number>('bytes').as('held')])
      .where('state', '=', 'held').groupBy('backend_id');
    if (ids) q = q.where('backend_id', 'in', ids.length > 0 ? [...ids] : ['' as BackendId]);
    const out = new Map<BackendId, number>();
    for (const r of await q.execute()) out.set(r.backend_id, Number(r.held));
    return out;
  }

  /**
   * Held claims nobody will finish: their operation has finished (or vanished), or they expired with
   * no queued or running operation. A claim of a live operation is never stale, however old.
   */
  async listStale(db: Executor, now = nowIso()): Promise<ClaimRow[]> {
    return db.selectFrom('claims').selectAll('claims')
      .leftJoin('operations', 'operations.id', 'claims.operation_id')
      .where('claims.state', '=', 'held')
      .where((eb) => eb.or([
        eb('operations.state', 'in', [...FINISHED_OPERATION_STATES]),
        eb.and([eb('claims.expires_at', '<', now), eb.or([eb('operations.id', 'is', null), eb('operations.state', 'not in', [...ACTIVE_OPERATION_STATES])])]),
      ]))
      .execute();
  }

  /** Deletes finished (committed or released) claims created before `before`; returns how many. */
  async purgeFinished(db: Executor, before: string): Promise<number> {
    const r = await db.deleteFrom('claims').where('state', 'in', [...SETTLED_CLAIM_STATES]).where('created_at', '<', before).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  private async finish(db: Executor, resourceId: string, to: ClaimState, operationId?: string): Promise<number> {
    let q = db.updateTable('claims').set({ state: to }).where('resource_id', '=', resourceId).where('state', '=', 'held');
    if (operationId !== undefined) q = q.where('operation_id', '=', operationId);
    const r = await q.executeTakeFirst();
    return Number(r.numUpdatedRows);
  }
}
