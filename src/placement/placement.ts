import type { PlacementSummary } from '../core/schemas/placement-schema.js';
import type { PlacementPolicy } from '../core/states.js';
import { usableBytes } from '../core/capacity.js';
import { PLACEABLE_NODE_STATES } from '../core/states.js';

/** A backend as placement sees it: a plain, in-memory snapshot. */
export interface BackendView {
  readonly id: string;
  readonly name: string;
  /** The tenant ids it is restricted to; absent or null: shared with every tenant. */
  readonly tenants?: readonly string[] | null;
  readonly state: string;
  readonly role: string;
  readonly kind: string;
  readonly zone: string;
  readonly tags: readonly string[];
  readonly capabilities: readonly string[];
  readonly cost: number;
  readonly totalBytes: number;
  readonly freeBytes: number;
  readonly overcommitRatio: number;
  readonly reservedPercent: number;
  readonly provisionedBytes: number;
  readonly claimedBytes: number;
  /** The storage node its driver runs on (absent or null: the control plane itself). */
  readonly node?: { readonly name: string; readonly state: string; readonly adminState: string } | null;
}

/** The policies (their names are part of the wire schema, with it in core). */
export { PLACEMENT_POLICIES, type PlacementPolicy } from '../core/states.js';

/** What is being placed and the constraints on it. */
export interface PlacementRequest {
  readonly sizeBytes: number;
  readonly kind: string;
  readonly requiredTags: readonly string[];
  readonly forbiddenTags: readonly string[];
  readonly requiredCapabilities: readonly string[];
  readonly zone: string | null;
  readonly policy: PlacementPolicy;
  readonly className: string | null;
  /** Backends that already failed this request (retry excludes them). */
  readonly exclude: readonly string[];
  /** The requesting tenant; absent or null skips the visibility filter. */
  readonly tenantId?: string | null;
}

/** One backend's verdict: rejected by a filter (with the reason) or passed with its weights and score. */
export interface Verdict {
  readonly backend: string;
  readonly backendId: string;
  readonly passed: boolean;
  readonly filter: string | null;
  readonly reason: string | null;
  /** The capacity weight: usable bytes from the one capacity function. */
  readonly usableBytes: number;
  /** The cost weight. */
  readonly cost: number;
  /** The policy's primary score (higher is better); ties are broken as `compareCandidates` says. */
  readonly score: number | null;
}

/** The full decision: every verdict, the winner, and the compact summary kept with the resource. */
export interface PlacementDecision {
  readonly winner: BackendView | null;
  readonly verdicts: Verdict[];
  readonly summary: PlacementSummary;
}

/** One filter: a name and a check that returns null when the backend passes, otherwise why not. */
export interface Filter {
  readonly name: string;
  /** Null when the backend passes; otherwise why it does not. */
  check(b: BackendView, r: PlacementRequest, usable: number): string | null;
}

const GiB = 1024 ** 3;
const fmtGiB = (n: number): string => `${(n / GiB).toFixed(2)} GiB`;

function missingFrom(have: readonly string[], want: readonly string[]): string[] {
  const out: string[] = [];
  for (const w of want) if (!have.includes(w)) out.push(w);
  return out;
}

/** The filters, in order; the first that rejects a backend is the one recorded. */
export const FILTERS: readonly Filter[] = [
  { name: 'retry', check: (b, r) => (r.exclude.length > 0 && r.exclude.includes(b.id) ? 'already failed for this request' : null) },
  { name: 'state', check: (b) => (b.state === 'enabled' ? null : `backend is ${b.state}`) },
  { name: 'node', check: (b) => nodeRejection(b.node) },
  { name: 'role', check: (b) => (b.role === 'primary' ? null : `role is ${b.role}, not primary`) },
  {
    name: 'tenant',
    check: (b, r) => (r.tenantId == null || b.tenants == null || b.tenants.includes(r.tenantId) ? null : 'not shared with this tenant'),
  },
  { name: 'kind', check: (b, r) => (b.kind === r.kind ? null : `serves ${b.kind}, not ${r.kind}`) },
  { name: 'zone', check: (b, r) => (r.zone === null || b.zone === r.zone ? null : `in zone ${b.zone || '(none)'}, not ${r.zone}`) },
  {
    name: 'tags',
    check: (b, r) => {
      if (r.requiredTags.length > 0) {
        const missing = missingFrom(b.tags, r.requiredTags);
        if (missing.length > 0) return `lacks required tag${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`;
      }
      if (r.forbiddenTags.length === 0) return null;
      const forbidden = r.forbiddenTags.filter((t) => b.tags.includes(t));
      return forbidden.length > 0 ? `carries forbidden tag${forbidden.length > 1 ? 's' : ''} ${forbidden.join(', ')}` : null;
    },
  },
  {
    name: 'capabilities',
    check: (b, r) => {
      if (r.requiredCapabilities.length === 0) return null;
      const missing = missingFrom(b.capabilities, r.requiredCapabilities);
      return missing.length > 0 ? `lacks capabilit${missing.length > 1 ? 'ies' : 'y'} ${missing.join(', ')}` : null;
    },
  },
  {
    name: 'capacity',
    check: (_b, r, usable) => (usable >= r.sizeBytes ? null : `needs ${fmtGiB(r.sizeBytes)}, only ${fmtGiB(Math.max(0, usable))} usable after overcommit, reserve and claims`),
  },
];

const PLACEABLE_NODES: ReadonlySet<string> = new Set(PLACEABLE_NODE_STATES);

/** Why a backend's node takes no new resources ("node sn1 is unreachable", "… is draining"), or null. */
function nodeRejection(node: BackendView['node']): string | null {
  if (!node) return null;
  if (!PLACEABLE_NODES.has(node.state)) return `node ${node.name} is ${node.state.replace('_', ' ')}`;
  return node.adminState === 'draining' ? `node ${node.name} is draining` : null;
}

/** The first filter that rejects `b` for `r` (given its usable bytes), or null when it passes them all. */
export function firstRejection(b: BackendView, r: PlacementRequest, usable: number): { filter: string; reason: string } | null {
  for (const f of FILTERS) {
    const reason = f.check(b, r, usable);
    if (reason !== null) return { filter: f.name, reason };
  }
  return null;
}

/**
 * The policy's primary score for a passing backend (higher is better), from the same usable figure
 * as the capacity filter: spread = usable, pack = −(usable − size), cheapest = −cost.
 */
export function score(b: BackendView, usable: number, r: PlacementRequest): number {
  switch (r.policy) {
    case 'spread': return usable;
    case 'pack': return -(usable - r.sizeBytes);
    case 'cheapest': return -b.cost;
  }
}

/** A passing backend with its weights, as the weighers compare it. */
export interface Candidate {
  readonly name: string;
  readonly cost: number;
  readonly usable: number;
}

/**
 * Orders two passing candidates under a policy: negative when `a` is better. Exact (no float
 * mixing of weights): cheapest = lower cost, then more usable; spread = more usable; pack = less
 * usable; every tie is broken by name so decisions are deterministic.
 */
export function compareCandidates(a: Candidate, b: Candidate, policy: PlacementPolicy): number {
  let d = 0;
  switch (policy) {
    case 'cheapest': d = a.cost !== b.cost ? a.cost - b.cost : b.usable - a.usable; break;
    case 'spread': d = b.usable - a.usable; break;
    case 'pack': d = a.usable - b.usable; break;
  }
  if (d !== 0) return d;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** One backend's verdict for `request`: the first filter that rejects it, or its weights and score. */
export function verdictOf(b: BackendView, request: PlacementRequest): Verdict {
  const usable = usableBytes(b);
  const failed = firstRejection(b, request, usable);
  if (failed) return { backend: b.name, backendId: b.id, passed: false, filter: failed.filter, reason: failed.reason, usableBytes: usable, cost: b.cost, score: null };
  return { backend: b.name, backendId: b.id, passed: true, filter: null, reason: null, usableBytes: usable, cost: b.cost, score: score(b, usable, request) };
}

/** Filters then weighs `backends` for `request`. Pure: no I/O, deterministic (ties break by name). */
export function decide(backends: readonly BackendView[], request: PlacementRequest): PlacementDecision {
  return decideFromVerdicts(backends, backends.map((b) => verdictOf(b, request)), request);
}

/**
 * The decision over `backends` given each one's verdict (`verdicts[i]` is `verdictOf(backends[i])`):
 * a caller that re-read a few backends recomputes only their verdicts, not every filter of every one.
 */
export function decideFromVerdicts(backends: readonly BackendView[], verdicts: Verdict[], request: PlacementRequest): PlacementDecision {
  const rejected: Record<string, number> = {};
  let best = -1;
  const candidate = (v: Verdict): Candidate => ({ name: v.backend, cost: v.cost, usable: v.usableBytes });
  for (const [i, v] of verdicts.entries()) {
    if (!v.passed) {
      const f = v.filter ?? '?';
      rejected[f] = (rejected[f] ?? 0) + 1;
      continue;
    }
    if (best < 0 || compareCandidates(candidate(v), candidate(verdicts[best] as Verdict), request.policy) < 0) best = i;
  }
  const passedCount = verdicts.length - Object.values(rejected).reduce((a, n) => a + n, 0);
  const top = bestVerdicts(verdicts, 3, request.policy);
  const winner = best >= 0 ? (backends[best] as BackendView) : null;
  return {
    winner,
    verdicts,
    summary: {
      policy: request.policy,
      className: request.className,
      candidates: backends.length,
      rejected,
      top: top.map((v) => ({ backend: v.backend, score: v.score ?? 0, usableBytes: v.usableBytes, cost: v.cost })),
      winner: winner?.name ?? null,
      pinned: false,
      attempts: [],
      reason: explain(winner, passedCount, backends.length, rejected, request, verdicts),
    },
  };
}

/**
 * The `k` best passing verdicts, best first (as `compareCandidates` orders them under `policy`), in
 * one pass that keeps only `k`: no sort of every passing backend (10,000 of them per create).
 */
export function bestVerdicts(verdicts: readonly Verdict[], k: number, policy: PlacementPolicy): Verdict[] {
  const best: Verdict[] = [];
  const cmp = (a: Verdict, b: Verdict): number => compareCandidates({ name: a.backend, cost: a.cost, usable: a.usableBytes }, { name: b.backend, cost: b.cost, usable: b.usableBytes }, policy);
  for (const v of verdicts) {
    if (!v.passed) continue;
    if (best.length === k && cmp(v, best[k - 1] as Verdict) >= 0) continue;
    let i = best.length;
    while (i > 0 && cmp(v, best[i - 1] as Verdict) < 0) i--;
    best.splice(i, 0, v);
    if (best.length > k) best.pop();
  }
  return best;
}

function explain(winner: BackendView | null, passedCount: number, total: number, rejected: Record<string, number>, r: PlacementRequest, verdicts: readonly Verdict[]): string {
  const rej = Object.entries(rejected).map(([f, n]) => `${n} by ${f}`).join(', ');
  const cls = r.className ? `class ${r.className}, ` : '';
  if (!winner) {
    if (total === 0) return 'no backends are registered';
    // Say why in words, not just which filter: the first few reasons, one per backend.
    const examples = verdicts.filter((v) => !v.passed).slice(0, 3).map((v) => `${v.backend} ${v.reason ?? `failed ${v.filter ?? '?'}`}`).join('; ');
    return `no backend can take ${fmtGiB(r.sizeBytes)}: all ${total} were rejected (${rej}): ${examples}${total > 3 ? '; …' : ''}`;
  }
  const why = r.policy === 'cheapest' ? 'the lowest cost, then the most usable space' : r.policy === 'spread' ? 'the most usable space' : 'the least usable space that still fits';
  return `${winner.name} won among ${passedCount} of ${total} backends that passed every filter${rej ? ` (rejected: ${rej})` : ''}, by ${why} (${cls}policy ${r.policy})`;
}
