import { StowageError } from '../core/errors.js';
import { formatSize } from '../core/sizes.js';
import { usableBytes } from '../core/capacity.js';
import type { BackendId } from '../core/ids.js';
import type { BackendView } from '../placement/placement.js';
import { backendCapabilities, type BackendRepository } from '../store/backend-repository.js';
import type { NewClaim } from '../store/claim-repository.js';
import { lockPlacement } from '../store/placement-lock.js';
import type { Repositories } from '../store/repositories.js';
import { readJson } from '../store/json.js';
import { restrictedTo } from '../tenants/visibility.js';
import type { ClaimRow } from '../store/schema.js';
import type { Executor, Store } from '../store/store.js';

/**
 * Loads every backend with its current usage (provisioned volumes, held claims) as placement views;
 * with `tenantId`, only those that tenant may use: the others are left out of its decisions and
 * their explanations, as if they did not exist.
 */
export async function loadBackendViews(db: Executor, repo: BackendRepository, tenantId?: string): Promise<BackendView[]> {
  const views = await readViews(db, repo);
  return tenantId === undefined ? views : views.filter((v) => viewVisibleTo(v, tenantId));
}

/** The placement views of the backends of `ids` that exist (by name), whoever may use them: three indexed reads. */
export async function loadBackendViewsOf(db: Executor, repo: BackendRepository, ids: readonly BackendId[]): Promise<BackendView[]> {
  return readViews(db, repo, ids);
}

/** Whether `tenantId` may place on a view's backend (the view's form of `visibleTo`). */
export function viewVisibleTo(v: BackendView, tenantId: string): boolean {
  return v.tenants == null || v.tenants.includes(tenantId);
}

async function readViews(db: Executor, repo: BackendRepository, ids?: readonly BackendId[]): Promise<BackendView[]> {
  const [rows, usage, nodes] = await Promise.all([repo.listAll(db, ids), repo.usage(db, ids), repo.nodesOfBackends(db, ids)]);
  return rows.map((r) => {
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
  const [view] = await loadBackendViewsOf(trx, repos.backends, [claim.backendId]);
  const usable = view ? usableBytes(view) : 0;
  if (!view || usable < claim.bytes) {
    throw new StowageError('NO_VALID_BACKEND', `backend ${view?.name ?? claim.backendId} has ${formatSize(Math.max(0, usable))} usable; ${what} needs ${formatSize(claim.bytes)} more`, {
      backend: view?.name ?? claim.backendId, needBytes: claim.bytes, usableBytes: Math.max(0, usable),
    });
  }
  return repos.claims.hold(trx, claim);
}
