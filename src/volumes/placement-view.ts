import { sql } from 'kysely';
import { StowageError } from '../core/errors.js';
import { formatSize } from '../core/sizes.js';
import { usableBytes } from '../placement/capacity.js';
import type { BackendView } from '../placement/placement.js';
import { BackendRepository, backendCapabilities } from '../store/backend-repository.js';
import { ClaimRepository, type NewClaim } from '../store/claim-repository.js';
import { readJson } from '../store/json.js';
import type { ClaimRow } from '../store/schema.js';
import type { Executor, Store } from '../store/store.js';

const PLACEMENT_LOCK_KEY = 0x5704a70;

/**
 * Serializes placement decisions across replicas for the rest of the transaction: on PostgreSQL an
 * advisory transaction lock; SQLite transactions already run one at a time.
 */
export async function lockPlacement(db: Executor, dialect: Store['dialect']): Promise<void> {
  if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(${PLACEMENT_LOCK_KEY})`.execute(db);
}

/** Loads every backend with its current usage (provisioned volumes, held claims) as placement views. */
export async function loadBackendViews(db: Executor, repo = new BackendRepository()): Promise<BackendView[]> {
  const [rows, usage] = await Promise.all([repo.listAll(db), repo.usage(db)]);
  return rows.map((r) => {
    const u = usage.get(r.id);
    return {
      id: r.id,
      name: r.name,
      tenantId: r.tenant_id,
      state: r.state,
      role: r.role,
      kind: r.kind,
      zone: r.zone,
      tags: readJson<string[]>(r.tags, []),
      capabilities: backendCapabilities(r),
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

/**
 * Claims `bytes` more on one given backend (a resize, or a snapshot or clone that must live beside
 * its source): takes the placement lock, checks the backend's usable capacity with the same
 * function placement uses, and records a held claim, all in the caller's transaction. Throws
 * NO_VALID_BACKEND when the backend cannot take it. Commit or release the claim when the driver returns.
 */
export async function claimOnBackend(trx: Executor, dialect: Store['dialect'], claim: NewClaim, what: string): Promise<ClaimRow> {
  await lockPlacement(trx, dialect);
  const view = (await loadBackendViews(trx)).find((b) => b.id === claim.backendId);
  const usable = view ? usableBytes(view) : 0;
  if (!view || usable < claim.bytes) {
    throw new StowageError('NO_VALID_BACKEND', `backend ${view?.name ?? claim.backendId} has ${formatSize(Math.max(0, usable))} usable; ${what} needs ${formatSize(claim.bytes)} more`, {
      backend: view?.name ?? claim.backendId, needBytes: claim.bytes, usableBytes: Math.max(0, usable),
    });
  }
  return new ClaimRepository().hold(trx, claim);
}
