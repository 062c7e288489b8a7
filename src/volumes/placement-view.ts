import { StowageError } from '../core/errors.js';
import { formatSize } from '../core/sizes.js';
import { usableBytes } from '../core/capacity.js';
import type { BackendView } from '../placement/placement.js';
import { backendCapabilities, type BackendRepository } from '../store/backend-repository.js';
import type { NewClaim } from '../store/claim-repository.js';
import { lockPlacement } from '../store/placement-lock.js';
import type { Repositories } from '../store/repositories.js';
import { readJson } from '../store/json.js';
import { restrictedTo, visibleTo } from '../tenants/visibility.js';
import type { ClaimRow } from '../store/schema.js';
import type { Executor, Store } from '../store/store.js';

/** The placement lock, re-exported for the placement steps that import it from here. */

/**
 * Loads every backend with its current usage (provisioned volumes, held claims) as placement views;
 * with `tenantId`, only those that tenant may use: the others are left out of its decisions and
 * their explanations, as if they did not exist.
 */
export async function loadBackendViews(db: Executor, repo: BackendRepository, tenantId?: string): Promise<BackendView[]> {
  const [rows, usage, nodes] = await Promise.all([repo.listAll(db), repo.usage(db), repo.nodesOfBackends(db)]);
  return rows.filter((r) => tenantId === undefined || visibleTo(r.tenants, tenantId)).map((r) => {
    const u = usage.get(r.id);
    return {
      id: r.id,
      name: r.name,
      tenants: restrictedTo(r.tenants),
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
      node: nodes.get(r.id) ?? null,
    };
  });
}

/**
 * Claims `bytes` more on one given backend (a resize, or a snapshot or clone that must live beside
 * its source): takes the placement lock, checks the backend's usable capacity with the same
 * function placement uses, and records a held claim, all in the caller's transaction. Throws
 * NO_VALID_BACKEND when the backend cannot take it. Commit or release the claim when the driver returns.
 */
export async function claimOnBackend(trx: Executor, dialect: Store['dialect'], repos: Pick<Repositories, 'backends' | 'claims'>, claim: NewClaim, what: string): Promise<ClaimRow> {
  await lockPlacement(trx, dialect);
  const view = (await loadBackendViews(trx, repos.backends)).find((b) => b.id === claim.backendId);
  const usable = view ? usableBytes(view) : 0;
  if (!view || usable < claim.bytes) {
    throw new StowageError('NO_VALID_BACKEND', `backend ${view?.name ?? claim.backendId} has ${formatSize(Math.max(0, usable))} usable; ${what} needs ${formatSize(claim.bytes)} more`, {
      backend: view?.name ?? claim.backendId, needBytes: claim.bytes, usableBytes: Math.max(0, usable),
    });
  }
  return repos.claims.hold(trx, claim);
}
