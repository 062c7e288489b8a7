import { newId } from '../core/ids.js';
import type { PageOf } from '../core/models.js';
import type { StowageEvent } from '../core/schemas/event-schema.js';
import { nowIso, readJson, writeJson } from './json.js';
import type { EventRow } from './schema.js';
import type { Executor } from './store.js';

/** One state change to record; `from`/`to` are the states before and after. */
export interface EventInput {
  readonly tenantId: string;
  readonly actor: string;
  readonly resourceType: string;
  readonly resourceId: string;
  readonly resourceName?: string | null;
  readonly action: string;
  readonly from?: string | null;
  readonly to?: string | null;
  readonly message: string;
  readonly details?: Readonly<Record<string, unknown>>;
  readonly operationId?: string | null;
}

/** Filters for listing events; results are newest first unless `after` is given. */
export interface EventQuery {
  /** null: every tenant's (an admin's --all-tenants). */
  readonly tenantId: string | null;
  /** Only events of these kinds of resource (a non-admin sees only its tenant's resources'). */
  readonly resourceTypes?: readonly string[];
  readonly resourceId?: string;
  readonly resourceType?: string;
  readonly limit: number;
  /** Events with seq below this (paging backwards). */
  readonly before?: number;
  /** Events with seq above this, oldest first (following). */
  readonly after?: number;
}

/**
 * Appends one event. A function as well as a method so `transition()`, which lives in the store
 * and writes a move's event in the move's transaction, needs no repository instance of its own.
 */
export async function appendEvent(db: Executor, e: EventInput): Promise<void> {
  await db.insertInto('events').values({
    id: newId('event'),
    tenant_id: e.tenantId,
    at: nowIso(),
    actor: e.actor,
    resource_type: e.resourceType,
    resource_id: e.resourceId,
    resource_name: e.resourceName ?? null,
    action: e.action,
    from_state: e.from ?? null,
    to_state: e.to ?? null,
    message: e.message,
    details: writeJson(e.details ?? {}),
    operation_id: e.operationId ?? null,
  }).execute();
}

/** Append-only audit log of every state change. */
export class EventRepository {
  async append(db: Executor, e: EventInput): Promise<void> {
    await appendEvent(db, e);
  }

  async list(db: Executor, q: EventQuery): Promise<PageOf<StowageEvent>> {
    let query = db.selectFrom('events').selectAll();
    if (q.tenantId !== null) query = query.where('tenant_id', '=', q.tenantId);
    if (q.resourceTypes) query = query.where('resource_type', 'in', [...q.resourceTypes]);
    if (q.resourceId) query = query.where('resource_id', '=', q.resourceId);
    if (q.resourceType) query = query.where('resource_type', '=', q.resourceType);
    if (q.after !== undefined) {
      query = query.where('seq', '>', q.after).orderBy('seq', 'asc');
    } else {
      if (q.before !== undefined) query = query.where('seq', '<', q.before);
      query = query.orderBy('seq', 'desc');
    }
    const rows = await query.limit(q.limit + 1).execute();
    const items = rows.slice(0, q.limit).map(toEvent);
    const last = items.at(-1);
    return { items, nextCursor: rows.length > q.limit && last ? String(last.seq) : null };
  }
}

/** Maps a row to the API model. */
export function toEvent(r: EventRow): StowageEvent {
  return {
    seq: Number(r.seq),
    id: r.id,
    tenantId: r.tenant_id,
    at: r.at,
    actor: r.actor,
    resourceType: r.resource_type,
    resourceId: r.resource_id,
    resourceName: r.resource_name,
    action: r.action,
    fromState: r.from_state,
    toState: r.to_state,
    message: r.message,
    details: readJson<Record<string, unknown>>(r.details, {}),
    operationId: r.operation_id,
  };
}
