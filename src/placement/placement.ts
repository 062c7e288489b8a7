import type { PlacementSummary } from '../core/models.js';
import { usableBytes } from './capacity.js';

/** A backend as placement sees it: a plain, in-memory snapshot. */
export interface BackendView {
  readonly id: string;
  readonly name: string;
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
}

/** Placement policy: `cheapest` (lowest cost, then most room), `spread` (most room), `pack` (least room that fits). */
export type PlacementPolicy = 'cheapest' | 'spread' | 'pack';

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
}

/** One backend's verdict: rejected by a filter (with the reason) or passed with its score. */
export interface Verdict {
  readonly backend: string;
  readonly backendId: string;
  readonly passed: boolean;
  readonly filter: string | null;
  readonly reason: string | null;
  readonly usableBytes: number;
  readonly cost: number;
  readonly score: number | null;
}

/** The full decision: every verdict, the winner, and the compact summary kept with the resource. */
export interface PlacementDecision {
  readonly winner: BackendView | null;
  readonly verdicts: Verdict[];
  readonly summary: PlacementSummary;
}

interface Filter {
  readonly name: string;
  /** Null when the backend passes; otherwise why it does not. */
  check(b: BackendView, r: PlacementRequest, usable: number): string | null;
}

const GiB = 1024 ** 3;
const fmtGiB = (n: number): string => `${(n / GiB).toFixed(2)} GiB`;

/** The filters, in order; the first that rejects a backend is the one recorded. */
export const FILTERS: readonly Filter[] = [
  { name: 'retry', check: (b, r) => (r.exclude.includes(b.id) ? 'already failed for this request' : null) },
  { name: 'state', check: (b) => (b.state === 'enabled' ? null : `backend is ${b.state}`) },
  { name: 'role', check: (b) => (b.role === 'primary' ? null : `role is ${b.role}, not primary`) },
  { name: 'kind', check: (b, r) => (b.kind === r.kind ? null : `serves ${b.kind}, not ${r.kind}`) },
  { name: 'zone', check: (b, r) => (r.zone === null || b.zone === r.zone ? null : `in zone ${b.zone || '(none)'}, not ${r.zone}`) },
  {
    name: 'tags',
    check: (b, r) => {
      const missing = r.requiredTags.filter((t) => !b.tags.includes(t));
      if (missing.length > 0) return `lacks required tag${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`;
      const forbidden = r.forbiddenTags.filter((t) => b.tags.includes(t));
      return forbidden.length > 0 ? `carries forbidden tag${forbidden.length > 1 ? 's' : ''} ${forbidden.join(', ')}` : null;
    },
  },
  {
    name: 'capabilities',
    check: (b, r) => {
      const missing = r.requiredCapabilities.filter((c) => !b.capabilities.includes(c));
      return missing.length > 0 ? `lacks capabilit${missing.length > 1 ? 'ies' : 'y'} ${missing.join(', ')}` : null;
    },
  },
  {
    name: 'capacity',
    check: (_b, r, usable) => (usable >= r.sizeBytes ? null : `needs ${fmtGiB(r.sizeBytes)}, only ${fmtGiB(Math.max(0, usable))} usable after overcommit, reserve and claims`),
  },
];

/** Score for a passing backend under a policy; higher wins. Uses the same usable figure as the filter. */
export function score(b: BackendView, usable: number, r: PlacementRequest): number {
  switch (r.policy) {
    case 'spread': return usable;
    case 'pack': return -(usable - r.sizeBytes);
    case 'cheapest': return -b.cost * 1e18 + usable / 1e3;
  }
}

/** Filters then weighs `backends` for `request`. Pure: no I/O, deterministic (ties break by name). */
export function decide(backends: readonly BackendView[], request: PlacementRequest): PlacementDecision {
  const verdicts: Verdict[] = [];
  const rejected: Record<string, number> = {};
  let best: { b: BackendView; score: number } | null = null;
  for (const b of backends) {
    const usable = usableBytes(b);
    let failed: { filter: string; reason: string } | null = null;
    for (const f of FILTERS) {
      const reason = f.check(b, request, usable);
      if (reason !== null) { failed = { filter: f.name, reason }; break; }
    }
    if (failed) {
      rejected[failed.filter] = (rejected[failed.filter] ?? 0) + 1;
      verdicts.push({ backend: b.name, backendId: b.id, passed: false, filter: failed.filter, reason: failed.reason, usableBytes: usable, cost: b.cost, score: null });
      continue;
    }
    const s = score(b, usable, request);
    verdicts.push({ backend: b.name, backendId: b.id, passed: true, filter: null, reason: null, usableBytes: usable, cost: b.cost, score: s });
    if (!best || s > best.score || (s === best.score && b.name < best.b.name)) best = { b, score: s };
  }
  const passed = verdicts.filter((v) => v.passed).sort((a, b) => (b.score ?? 0) - (a.score ?? 0) || a.backend.localeCompare(b.backend));
  const winner = best?.b ?? null;
  return {
    winner,
    verdicts,
    summary: {
      policy: request.policy,
      className: request.className,
      candidates: backends.length,
      rejected,
      top: passed.slice(0, 3).map((v) => ({ backend: v.backend, score: v.score ?? 0, usableBytes: v.usableBytes, cost: v.cost })),
      winner: winner?.name ?? null,
      pinned: false,
      attempts: [],
      reason: explain(winner, passed.length, backends.length, rejected, request),
    },
  };
}

function explain(winner: BackendView | null, passedCount: number, total: number, rejected: Record<string, number>, r: PlacementRequest): string {
  const rej = Object.entries(rejected).map(([f, n]) => `${n} by ${f}`).join(', ');
  if (!winner) {
    return total === 0 ? 'no backends are registered' : `no backend can take ${fmtGiB(r.sizeBytes)}: all ${total} were rejected (${rej})`;
  }
  const why = r.policy === 'cheapest' ? 'the lowest cost, then the most usable space' : r.policy === 'spread' ? 'the most usable space' : 'the least usable space that still fits';
  return `${winner.name} won among ${passedCount} of ${total} backends that passed every filter${rej ? ` (rejected: ${rej})` : ''}, by ${why} (policy ${r.policy})`;
}
