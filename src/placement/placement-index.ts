import { usableBytes } from '../core/capacity.js';
import { firstRejection, type BackendView, type PlacementRequest } from './placement.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

interface Entry {
  readonly view: Mutable<BackendView>;
  usable: number;
  readonly buckets: Bucket[];
}

/** Entries ordered by (usable ascending, name ascending): the order every policy walks in. */
class SortedEntries {
  readonly items: Entry[] = [];

  /** First index whose usable is at least `usable` (and, among equal usable, name at least `name`). */
  lowerBound(usable: number, name = ''): number {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.items[mid] as Entry;
      if (e.usable < usable || (e.usable === usable && e.view.name < name)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  insert(e: Entry): void {
    this.items.splice(this.lowerBound(e.usable, e.view.name), 0, e);
  }

  /** Removes `e`, found by its current (not yet updated) usable figure. */
  remove(e: Entry): void {
    const i = this.lowerBound(e.usable, e.view.name);
    if (this.items[i] === e) this.items.splice(i, 1);
    else {
      const j = this.items.indexOf(e);
      if (j >= 0) this.items.splice(j, 1);
    }
  }
}

/** Backends sharing a (zone, tag) key, kept sorted; per-cost lists only once a cheapest request asks. */
class Bucket {
  readonly all = new SortedEntries();
  private byCost: Map<number, SortedEntries> | null = null;
  private costs: number[] = [];

  add(e: Entry): void {
    this.all.insert(e);
    if (this.byCost) this.costList(e.view.cost).insert(e);
  }

  remove(e: Entry): void {
    this.all.remove(e);
    this.byCost?.get(e.view.cost)?.remove(e);
  }

  /** Lists per cost, cheapest first. */
  cheapestFirst(): readonly SortedEntries[] {
    if (!this.byCost) {
      this.byCost = new Map();
      for (const e of this.all.items) this.costList(e.view.cost).insert(e);
    }
    const map = this.byCost;
    return this.costs.map((c) => map.get(c) as SortedEntries);
  }

  private costList(cost: number): SortedEntries {
    const map = this.byCost as Map<number, SortedEntries>;
    let list = map.get(cost);
    if (!list) {
      list = new SortedEntries();
      map.set(cost, list);
      this.costs.push(cost);
      this.costs.sort((a, b) => a - b);
    }
    return list;
  }
}

const ANY = '\u0000*';

/**
 * A placement index for high decision rates: backends bucketed by (zone, required tag), each bucket
 * sorted by usable capacity (and split by cost for `cheapest`), so a decision walks candidates
 * best-first and usually stops at the first one. Every candidate still goes through the same
 * FILTERS and `usableBytes` as `decide`, and the walk order is exactly `compareCandidates`, so the
 * winner is always the one `decide` would pick over the same views. Buckets are built lazily on
 * first use and kept up to date as capacity is consumed or returned.
 */
export class PlacementIndex {
  private readonly entries = new Map<string, Entry>();
  private readonly buckets = new Map<string, Bucket>();

  constructor(backends: readonly BackendView[]) {
    for (const b of backends) {
      const view: Mutable<BackendView> = { ...b, tags: [...b.tags], capabilities: [...b.capabilities] };
      this.entries.set(b.id, { view, usable: usableBytes(view), buckets: [] });
    }
  }

  /** The current views (with capacity consumed so far), in insertion order. */
  views(): BackendView[] {
    return [...this.entries.values()].map((e) => ({ ...e.view }));
  }

  /** The backend `decide` would pick for `r` over `views()`, or null when none passes every filter. */
  decide(r: PlacementRequest): BackendView | null {
    const bucket = this.bucketFor(r);
    if (!bucket) return null;
    switch (r.policy) {
      case 'spread': return this.walkMostUsable(bucket.all, r);
      case 'pack': {
        const items = bucket.all.items;
        for (let i = bucket.all.lowerBound(r.sizeBytes); i < items.length; i++) {
          const e = items[i] as Entry;
          if (firstRejection(e.view, r, e.usable) === null) return e.view;
        }
        return null;
      }
      case 'cheapest': {
        for (const list of bucket.cheapestFirst()) {
          const w = this.walkMostUsable(list, r);
          if (w) return w;
        }
        return null;
      }
    }
  }

  /** Adds `bytes` to a backend's claimed capacity (negative gives it back) and re-sorts it. */
  consume(backendId: string, bytes: number): void {
    const e = this.entries.get(backendId);
    if (!e) throw new Error(`placement index: unknown backend ${backendId}`);
    for (const b of e.buckets) b.remove(e);
    e.view.claimedBytes += bytes;
    e.usable = usableBytes(e.view);
    for (const b of e.buckets) b.add(e);
  }

  /** Most usable first, ties by name; stops once nothing left can hold the size. */
  private walkMostUsable(list: SortedEntries, r: PlacementRequest): BackendView | null {
    const items = list.items;
    let i = items.length - 1;
    while (i >= 0) {
      const top = items[i] as Entry;
      if (top.usable < r.sizeBytes) return null;
      const start = top.usable === (items[i - 1]?.usable ?? Number.NaN) ? list.lowerBound(top.usable) : i;
      for (let k = start; k <= i; k++) {
        const e = items[k] as Entry;
        if (firstRejection(e.view, r, e.usable) === null) return e.view;
      }
      i = start - 1;
    }
    return null;
  }

  /** The smallest bucket that holds every backend the request could accept. */
  private bucketFor(r: PlacementRequest): Bucket | null {
    const zone = r.zone ?? ANY;
    if (r.requiredTags.length === 0) return this.bucket(zone, ANY);
    let best: Bucket | null = null;
    for (const t of r.requiredTags) {
      const b = this.bucket(zone, t);
      if (!best || b.all.items.length < best.all.items.length) best = b;
    }
    return best;
  }

  private bucket(zone: string, tag: string): Bucket {
    const key = `${zone}\u0001${tag}`;
    let b = this.buckets.get(key);
    if (b) return b;
    const bucket = new Bucket();
    for (const e of this.entries.values()) {
      const v = e.view;
      // Only backends that could ever pass state and role; the full filters still run per candidate.
      if (v.state !== 'enabled' || v.role !== 'primary') continue;
      if (zone !== ANY && v.zone !== zone) continue;
      if (tag !== ANY && !v.tags.includes(tag)) continue;
      bucket.add(e);
      e.buckets.push(bucket);
    }
    this.buckets.set(key, bucket);
    b = bucket;
    return b;
  }
}
