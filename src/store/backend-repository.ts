import type { Backend } from '../core/models.js';
import type { BackendKind, BackendRole, BackendState } from '../core/states.js';
import { usableBytes } from '../placement/capacity.js';
import { readJson, writeJson } from './json.js';
import type { BackendRow, BackendUpdate, NewBackendRow } from './schema.js';
import type { Executor } from './store.js';

/** Volume states whose size counts as provisioned on their backend. */
export const PROVISIONED_VOLUME_STATES = ['creating', 'available', 'resizing', 'deleting'] as const;

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

  async findById(db: Executor, id: string): Promise<BackendRow | undefined> {
    return db.selectFrom('backends').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async findByName(db: Executor, name: string): Promise<BackendRow | undefined> {
    return db.selectFrom('backends').selectAll().where('name', '=', name).executeTakeFirst();
  }

  /** Locks the row for the rest of the transaction on PostgreSQL (SQLite transactions are already exclusive). */
  async lockById(db: Executor, id: string, dialect: 'sqlite' | 'postgres'): Promise<BackendRow | undefined> {
    const q = db.selectFrom('backends').selectAll().where('id', '=', id);
    return (dialect === 'postgres' ? q.forUpdate() : q).executeTakeFirst();
  }

  async listAll(db: Executor): Promise<BackendRow[]> {
    return db.selectFrom('backends').selectAll().orderBy('name').execute();
  }

  async update(db: Executor, id: string, patch: BackendUpdate): Promise<void> {
    await db.updateTable('backends').set(patch).where('id', '=', id).execute();
  }

  async delete(db: Executor, id: string): Promise<void> {
    await db.deleteFrom('backends').where('id', '=', id).execute();
  }

  /** Provisioned bytes and live volume count per backend (all backends when `ids` is omitted). */
  async usage(db: Executor, ids?: readonly string[]): Promise<Map<string, BackendUsage>> {
    let q = db.selectFrom('volumes')
      .select((eb) => ['backend_id', eb.fn.sum<number>('size_bytes').as('provisioned'), eb.fn.countAll<number>().as('n')])
      .where('backend_id', 'is not', null)
      .where('state', 'in', PROVISIONED_VOLUME_STATES)
      .groupBy('backend_id');
    if (ids) q = q.where('backend_id', 'in', ids.length > 0 ? [...ids] : ['']);
    const rows = await q.execute();
    const out = new Map<string, BackendUsage>();
    for (const r of rows) {
      if (r.backend_id !== null) out.set(r.backend_id, { provisionedBytes: Number(r.provisioned), claimedBytes: 0, volumeCount: Number(r.n) });
    }
    return out;
  }

  /** Live volumes (not deleted) on a backend, whatever their state. */
  async countVolumes(db: Executor, id: string): Promise<number> {
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

/** Maps a row plus its usage to the API model. */
export function toBackend(r: BackendRow, usage: BackendUsage | undefined): Backend {
  const overrides = readJson<CapabilityOverrides>(r.capabilities_overrides, { add: [], remove: [] });
  const reported = readJson<string[]>(r.capabilities_reported, []);
  const u = usage ?? { provisionedBytes: 0, claimedBytes: 0, volumeCount: 0 };
  return {
    id: r.id,
    name: r.name,
    tenantId: r.tenant_id,
    driver: r.driver_uri,
    kind: r.kind as BackendKind,
    role: r.role as BackendRole,
    state: r.state as BackendState,
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
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** Serializes string arrays/records for JSON columns (kept here so callers never stringify by hand). */
export const backendJson = { tags: (t: readonly string[]) => writeJson([...t]), options: (o: Readonly<Record<string, string>>) => writeJson(o) };
