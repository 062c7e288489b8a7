import { sql } from 'kysely';
import type { Backend } from '../core/schemas/backend-schema.js';
import { statesWhere } from '../core/state-machine.js';
import { BACKEND_OCCUPYING_SNAPSHOT_STATES, CLAIM_STATE_TABLE, LIVE_VOLUME_STATES, PROVISIONED_VOLUME_STATES } from '../core/states.js';
import { usableBytes } from '../core/capacity.js';
import { readJson, writeJson } from './json.js';
import type { BackendId } from '../core/ids.js';
import type { BackendRow, BackendUpdate, NewBackendRow } from './schema.js';
import type { Executor } from './store.js';
import { keysetPage, type PageRequest, type RowPage } from './keyset-page.js';

/** Per-backend usage the capacity model needs besides the row itself. */
export interface BackendUsage {
  readonly provisionedBytes: number;
  readonly claimedBytes: number;
  readonly volumeCount: number;
}

/** Backends and their usage. */
export class BackendRepository {
  async insert(db: Executor, row: NewBackendRow): Promise<void> {
    await db.insertInto('backends').values(row).execute();
  }

  async findById(db: Executor, id: BackendId): Promise<BackendRow | undefined> {
    return db.selectFrom('backends').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async findByName(db: Executor, name: string): Promise<BackendRow | undefined> {
    return db.selectFrom('backends').selectAll().where('name', '=', name).executeTakeFirst();
  }

  /** Locks the row for the rest of the transaction on PostgreSQL (SQLite transactions are already exclusive). */
  async lockById(db: Executor, id: BackendId, dialect: 'sqlite' | 'postgres'): Promise<BackendRow | undefined> {
    const q = db.selectFrom('backends').selectAll().where('id', '=', id);
    return (dialect === 'postgres' ? q.forUpdate() : q).executeTakeFirst();
  }

  /** The backends whose drivers run on storage node `nodeId`. */
  async listByNode(db: Executor, nodeId: string): Promise<BackendRow[]> {
    return db.selectFrom('backends').selectAll().where('node_id', '=', nodeId).orderBy('name').execute();
  }

  /** The node of every backend that has one (or of those of `ids`), by backend id (name, state, admin state: what placement checks). */
  async nodesOfBackends(db: Executor, ids?: readonly BackendId[]): Promise<Map<string, { name: string; state: string; adminState: string }>> {
    let q = db.selectFrom('backends').innerJoin('nodes', 'nodes.id', 'backends.node_id')
      .select(['backends.id as backend_id', 'nodes.name as name', 'nodes.state as state', 'nodes.admin_state as admin_state']);
    if (ids) q = q.where('backends.id', 'in', ids.length > 0 ? [...ids] : ['' as BackendId]);
    const rows = await q.execute();
    return new Map(rows.map((r) => [r.backend_id, { name: r.name, state: r.state, adminState: r.admin_state }]));
  }

  /** Names of the given backends by id (a list page's, not every backend's). */
  async namesOf(db: Executor, ids: readonly BackendId[]): Promise<Map<BackendId, string>> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return new Map();
    const rows = await db.selectFrom('backends').select(['id', 'name']).where('id', 'in', unique).execute();
    return new Map(rows.map((r) => [r.id, r.name]));
  }

  /** Every backend by name, or only those of `ids` (still by name). */
  async listAll(db: Executor, ids?: readonly BackendId[]): Promise<BackendRow[]> {
    let q = db.selectFrom('backends').selectAll().orderBy('name');
    if (ids) q = q.where('id', 'in', ids.length > 0 ? [...ids] : ['' as BackendId]);
    return q.execute();
  }

  /** The version of what placement reads of backends and nodes: it moves with every such change (see migration 0018). */
  async catalogVersion(db: Executor): Promise<number> {
    const r = await db.selectFrom('placement_catalog').select('version').where('id', '=', 1).executeTakeFirst();
    return Number(r?.version ?? 0);
  }

  /** One page of backends by name. */
  async page(db: Executor, page: PageRequest): Promise<RowPage<BackendRow>> {
    return keysetPage(db.selectFrom('backends').selectAll(), 'name', page);
  }

  async update(db: Executor, id: BackendId, patch: BackendUpdate): Promise<void> {
    await db.updateTable('backends').set(patch).where('id', '=', id).execute();
  }

  async delete(db: Executor, id: BackendId): Promise<void> {
    await db.deleteFrom('backends').where('id', '=', id).execute();
  }

  /**
   * Provisioned bytes, held claim bytes and live volume count per backend (all backends when `ids`
   * is omitted). One SQL statement, so one snapshot: on PostgreSQL (read committed) two statements
   * could straddle a create's final commit, seeing the volume still `creating` and its claim already
   * committed, and count it nowhere. Which states count comes from the volume state table: every
   * provisioned state is also live, so no state's bytes are counted in the CASE and then filtered out.
   */
  async usage(db: Executor, ids?: readonly BackendId[]): Promise<Map<BackendId, BackendUsage>> {
    const only = ids ? (ids.length > 0 ? [...ids] : ['' as BackendId]) : null;
    let vols = db.selectFrom('volumes')
      .select((eb) => [
        sql<BackendId>`backend_id`.as('bid'),
        eb.case().when('state', 'in', [...PROVISIONED_VOLUME_STATES]).then(eb.ref('size_bytes')).else(0).end().as('provisioned'),
        sql<number>`0`.as('claimed'),
        sql<number>`1`.as('n'),
      ])
      .where('backend_id', 'is not', null)
      .where('state', 'in', [...LIVE_VOLUME_STATES]);
    let held = db.selectFrom('claims')
      .select([sql<BackendId>`backend_id`.as('bid'), sql<number>`0`.as('provisioned'), 'bytes as claimed', sql<number>`0`.as('n')])
      .where('state', 'in', [...statesWhere(CLAIM_STATE_TABLE, (c) => c.counts)]);
    // Snapshots that are full copies take their size on the backend; offloaded ones share extents.
    let snaps = db.selectFrom('snapshots')
      .select([sql<BackendId>`backend_id`.as('bid'), 'size_bytes as provisioned', sql<number>`0`.as('claimed'), sql<number>`0`.as('n')])
      .where('method', '=', 'copy').where('state', 'in', [...BACKEND_OCCUPYING_SNAPSHOT_STATES]);
    if (only) {
      vols = vols.where('backend_id', 'in', only);
      held = held.where('backend_id', 'in', only);
      snaps = snaps.where('backend_id', 'in', only);
    }
    const rows = await db.selectFrom(vols.unionAll(held).unionAll(snaps).as('u'))
      .select((eb) => ['u.bid', eb.fn.sum<number>('u.provisioned').as('provisioned'), eb.fn.sum<number>('u.claimed').as('claimed'), eb.fn.sum<number>('u.n').as('n')])
      .groupBy('u.bid')
      .execute();
    const out = new Map<BackendId, BackendUsage>();
    for (const r of rows) out.set(r.bid, { provisionedBytes: Number(r.provisioned), claimedBytes: Number(r.claimed), volumeCount: Number(r.n) });
    return out;
  }

  /** Live volumes (not deleted) on a backend, whatever their state. */
  async countVolumes(db: Executor, id: BackendId): Promise<number> {
    const r = await db.selectFrom('volumes').select((eb) => eb.fn.countAll<number>().as('n'))
      .where('backend_id', '=', id).where('state', '<>', 'deleted').executeTakeFirstOrThrow();
    return Number(r.n);
  }
}

/** Admin capability overrides: names to add to or remove from what the probe reports. */
export interface CapabilityOverrides {
  add: string[];
  remove: string[];
}

/** Effective capabilities: reported ∪ added − removed, sorted. */
export function effectiveCapabilities(reported: readonly string[], overrides: CapabilityOverrides): string[] {
  const set = new Set(reported);
  for (const c of overrides.add) set.add(c);
  for (const c of overrides.remove) set.delete(c);
  return [...set].sort();
}

/** Effective capabilities of a backend row (reported by its probe, plus the admin's overrides). */
export function backendCapabilities(r: Pick<BackendRow, 'capabilities_reported' | 'capabilities_overrides'>): string[] {
  return effectiveCapabilities(readJson<string[]>(r.capabilities_reported, []), readJson<CapabilityOverrides>(r.capabilities_overrides, { add: [], remove: [] }));
}

/** Maps a row plus its usage to the API model. A backend row as the API shows it; `nodeName` is the name of its node (null: it runs in the control plane). */
export function toBackend(r: BackendRow, usage: BackendUsage | undefined, nodeName: string | null = null): Backend {
  const overrides = readJson<CapabilityOverrides>(r.capabilities_overrides, { add: [], remove: [] });
  const reported = readJson<string[]>(r.capabilities_reported, []);
  const u = usage ?? { provisionedBytes: 0, claimedBytes: 0, volumeCount: 0 };
  return {
    id: r.id,
    name: r.name,
    tenantId: r.tenant_id,
    driver: r.driver_uri,
    kind: r.kind,
    role: r.role,
    state: r.state,
    stateReason: r.state_reason,
    cost: r.cost,
    tags: readJson<string[]>(r.tags, []),
    zone: r.zone,
    overcommitRatio: r.overcommit_ratio,
    reservedPercent: r.reserved_percent,
    options: readJson<Record<string, string>>(r.options, {}),
    capabilities: effectiveCapabilities(reported, overrides),
    capabilitiesReported: reported,
    capabilityOverrides: overrides,
    capacity: {
      totalBytes: Number(r.total_bytes),
      freeBytes: Number(r.free_bytes),
      usedBytes: Number(r.used_bytes),
      provisionedBytes: u.provisionedBytes,
      claimedBytes: u.claimedBytes,
      usableBytes: usableBytes({
        totalBytes: Number(r.total_bytes),
        overcommitRatio: r.overcommit_ratio,
        reservedPercent: r.reserved_percent,
        provisionedBytes: u.provisionedBytes,
        claimedBytes: u.claimedBytes,
      }),
    },
    volumeCount: u.volumeCount,
    lastProbeAt: r.last_probe_at,
    node: nodeName,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** Serializes string arrays/records for JSON columns (kept here so callers never stringify by hand). */
export const backendJson = { tags: (t: readonly string[]) => writeJson([...t]), options: (o: Readonly<Record<string, string>>) => writeJson(o) };
