import { sql } from 'kysely';
import { BackendRepository, effectiveCapabilities, type CapabilityOverrides } from '../store/backend-repository.js';
import { readJson } from '../store/json.js';
import type { Executor, Store } from '../store/store.js';
import type { BackendView } from '../placement/placement.js';

const PLACEMENT_LOCK_KEY = 0x5704a70;

/**
 * Serializes placement decisions across replicas for the rest of the transaction: on PostgreSQL an
 * advisory transaction lock; SQLite transactions already run one at a time.
 */
export async function lockPlacement(db: Executor, dialect: Store['dialect']): Promise<void> {
  if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(${PLACEMENT_LOCK_KEY})`.execute(db);
}

/** Loads every backend with its current usage as placement views. */
export async function loadBackendViews(db: Executor, repo = new BackendRepository()): Promise<BackendView[]> {
  const [rows, usage] = await Promise.all([repo.listAll(db), repo.usage(db)]);
  return rows.map((r) => {
    const u = usage.get(r.id);
    return {
      id: r.id,
      name: r.name,
      state: r.state,
      role: r.role,
      kind: r.kind,
      zone: r.zone,
      tags: readJson<string[]>(r.tags, []),
      capabilities: effectiveCapabilities(readJson<string[]>(r.capabilities_reported, []), readJson<CapabilityOverrides>(r.capabilities_overrides, { add: [], remove: [] })),
      cost: r.cost,
      totalBytes: Number(r.total_bytes),
      freeBytes: Number(r.free_bytes),
      overcommitRatio: r.overcommit_ratio,
      reservedPercent: r.reserved_percent,
      provisionedBytes: u?.provisionedBytes ?? 0,
      claimedBytes: u?.claimedBytes ?? 0,
    };
  });
}
