import { idOf, type BackendId } from '../core/ids.js';
import { bestVerdicts, decide, decideFromVerdicts, verdictOf, type BackendView, type Verdict, type PlacementDecision, type PlacementRequest } from '../placement/placement.js';
import type { BackendRepository } from '../store/backend-repository.js';
import type { Executor } from '../store/store.js';
import { loadBackendViews, loadBackendViewsOf, viewVisibleTo } from './placement-view.js';

/**
 * How old the capacity figures of backends not verified in a decision may get: usage another
 * replica changed, space a deleted volume gave back, a probe's new free bytes. Everything else
 * placement reads is re-read the moment it changes (the catalog version).
 */
const CATALOG_MAX_AGE_MS = 5000;
/** The best candidates re-read exactly in one decision: with no more passing backends than this, a decision is exactly `decide` over fresh rows. */
const VERIFIED_CANDIDATES = 8;
/** Rounds of "the winner was not verified yet: verify it too" before falling back to a full read. */
const MAX_ROUNDS = 4;

/**
 * Every backend as placement sees it, kept in memory by one replica between decisions, so a create
 * does not read every backend row and sum the usage of every volume. It is re-read whole when the
 * store's catalog version moved (any backend or node change placement cares about, by any writer:
 * migration 0018's triggers) or when it is older than CATALOG_MAX_AGE_MS.
 *
 * A decision (`decide`, under the placement lock) never trusts the cached capacity of the backend it
 * picks: it decides over the catalog, re-reads the best candidates' rows and usage exactly in the
 * same transaction, decides again, and repeats while the winner is one it has not re-read. So a
 * volume is never placed on capacity that is not there (the same check as before, in the same
 * lock), and the choice among the verified candidates is exact; a backend outside them whose
 * cached figures are up to CATALOG_MAX_AGE_MS old can be passed over, never overcommitted.
 */
export class PlacementCatalog {
  private views = new Map<string, BackendView>();
  private version: number | null = null;
  private loadedAt = 0;

  constructor(private readonly repo: BackendRepository, private readonly now: () => number = Date.now) {}

  /**
   * Decides `request` in `trx`, which must hold the placement lock: only backends `tenantId` may
   * use, only `pinned` when given. The decision's verdicts and summary cover every such backend.
   */
  async decide(trx: Executor, request: PlacementRequest, tenantId: string, pinned: BackendId | null): Promise<PlacementDecision> {
    await this.refresh(trx);
    const verified = new Set<string>();
    const usable = (v: BackendView): boolean => viewVisibleTo(v, tenantId) && (pinned === null || v.id === pinned);
    let views = [...this.views.values()].filter(usable);
    // Every filter runs once per backend; a round recomputes only the verdicts of those it re-read.
    let verdicts = views.map((v) => verdictOf(v, request));
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const decision = decideFromVerdicts(views, verdicts, request);
      const winner = decision.winner;
      // No winner in the catalog: the full read below says exactly why (or finds one).
      if (!winner) break;
      if (verified.has(winner.id)) return decision;
      // Round 0 verifies the best few; a later round only the unverified winner it moved to.
      const ids = new Set(round === 0 ? bestCandidates(decision, request) : [winner.id]);
      const fresh = await loadBackendViewsOf(trx, this.repo, [...ids].map((id) => idOf('backend', id)));
      this.merge([...ids], fresh);
      for (const id of ids) verified.add(id);
      const byId = new Map(fresh.map((v) => [v.id, v]));
      const next: { views: BackendView[]; verdicts: Verdict[] } = { views: [], verdicts: [] };
      for (const [i, v] of views.entries()) {
        const now = ids.has(v.id) ? byId.get(v.id) : v;
        // A backend gone, or no longer this tenant's to use, leaves the decision.
        if (!now || !usable(now)) continue;
        next.views.push(now);
        next.verdicts.push(now === v ? (verdicts[i] as Verdict) : verdictOf(now, request));
      }
      ({ views, verdicts } = next);
    }
    this.replace(await loadBackendViews(trx, this.repo));
    return decide([...this.views.values()].filter(usable), request);
  }

  /** Records capacity this replica just claimed (after its transaction committed), until the next read. */
  claimed(backendId: string, bytes: number): void {
    const v = this.views.get(backendId);
    if (v) this.views.set(backendId, { ...v, claimedBytes: v.claimedBytes + bytes });
  }

  private async refresh(trx: Executor): Promise<void> {
    const version = await this.repo.catalogVersion(trx);
    if (version === this.version && this.now() - this.loadedAt < CATALOG_MAX_AGE_MS) return;
    this.replace(await loadBackendViews(trx, this.repo));
    this.version = version;
  }

  private replace(views: readonly BackendView[]): void {
    this.views = new Map(views.map((v) => [v.id, v]));
    this.loadedAt = this.now();
  }

  /**
   * Puts the re-read views of `ids` in place (the map keeps its name order, the order `decide`
   * reports verdicts in: a rename moves the version, so no name changes here); one that is gone is dropped.
   */
  private merge(ids: readonly string[], fresh: readonly BackendView[]): void {
    const byId = new Map(fresh.map((v) => [v.id, v]));
    for (const id of ids) {
      const v = byId.get(id);
      if (v) this.views.set(id, v);
      else this.views.delete(id);
    }
  }
}

/** The ids of the best passing backends of a decision, best first. */
function bestCandidates(decision: PlacementDecision, request: PlacementRequest): string[] {
  return bestVerdicts(decision.verdicts, VERIFIED_CANDIDATES, request.policy).map((v) => v.backendId);
}
