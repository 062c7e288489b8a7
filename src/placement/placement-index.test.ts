import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PlacementIndex } from './placement-index.js';
import { decide, PLACEMENT_POLICIES, type BackendView, type PlacementRequest } from './placement.js';

const ZONES = ['az0', 'az1', 'az2'] as const;
const TAGS = ['ssd', 'hdd', 'nvme', 'fast'] as const;

const backendArb = fc.record({
  state: fc.constantFrom('enabled', 'enabled', 'enabled', 'enabled', 'disabled', 'offline'),
  role: fc.constantFrom('primary', 'primary', 'primary', 'backup'),
  tenants: fc.constantFrom(null, null, null, ['tn-a'], ['tn-a', 'tn-b']),
  kind: fc.constantFrom('block', 'block', 'block', 'file'),
  zone: fc.constantFrom(...ZONES),
  tags: fc.uniqueArray(fc.constantFrom(...TAGS), { maxLength: 3 }),
  capabilities: fc.uniqueArray(fc.constantFrom('snapshot', 'snapshot.offload', 'clone'), { maxLength: 3 }),
  cost: fc.integer({ min: 0, max: 3 }),
  // Small capacities so equal usable figures (name tie-breaks) and exact fits happen often.
  totalBytes: fc.constantFrom(0, 100, 200, 400),
  overcommitRatio: fc.constantFrom(1, 1, 1.5, 2),
  reservedPercent: fc.constantFrom(0, 0, 5, 10),
  provisionedBytes: fc.constantFrom(0, 0, 50, 100),
  claimedBytes: fc.constantFrom(0, 0, 50),
});

const fleetArb = fc.array(backendArb, { minLength: 0, maxLength: 60 }).map((bs) => bs.map((b, i): BackendView => ({
  ...b, id: `bk-${String(i)}`, name: `be-${String((i * 7919) % 1000).padStart(3, '0')}-${String(i)}`, freeBytes: b.totalBytes,
})));

const requestArb = (n: number) => fc.record({
  sizeBytes: fc.oneof(fc.integer({ min: 1, max: 12 }).map((k) => k * 10), fc.integer({ min: 1, max: 120 })),
  kind: fc.constantFrom('block', 'block', 'block', 'block', 'file'),
  requiredTags: fc.oneof({ arbitrary: fc.constant([]), weight: 2 }, { arbitrary: fc.uniqueArray(fc.constantFrom(...TAGS), { minLength: 1, maxLength: 2 }), weight: 3 }),
  forbiddenTags: fc.oneof({ arbitrary: fc.constant([]), weight: 4 }, { arbitrary: fc.uniqueArray(fc.constantFrom(...TAGS), { minLength: 1, maxLength: 1 }), weight: 1 }),
  requiredCapabilities: fc.oneof({ arbitrary: fc.constant([]), weight: 4 }, { arbitrary: fc.uniqueArray(fc.constantFrom('snapshot', 'snapshot.offload'), { minLength: 1, maxLength: 1 }), weight: 1 }),
  zone: fc.option(fc.constantFrom(...ZONES), { nil: null }),
  policy: fc.constantFrom(...PLACEMENT_POLICIES),
  exclude: fc.uniqueArray(fc.integer({ min: 0, max: Math.max(0, n - 1) }).map((i) => `bk-${String(i)}`), { maxLength: 2 }),
  tenantId: fc.constantFrom(null, null, null, 'tn-a', 'tn-b'),
}).map((r): PlacementRequest => ({ ...r, className: null }));

describe('PlacementIndex (fast path) agrees with decide', () => {
  it('picks the same winner as the plain decide over random fleets and request sequences, consuming as it goes', () => {
    fc.assert(fc.property(fleetArb.chain((fleet) => fc.tuple(fc.constant(fleet), fc.array(requestArb(fleet.length), { minLength: 1, maxLength: 60 }))), ([fleet, requests]) => {
      const index = new PlacementIndex(fleet);
      for (const r of requests) {
        const slow = decide(index.views(), r).winner;
        const fast = index.decide(r);
        expect(fast?.id ?? null).toBe(slow?.id ?? null);
        if (fast) index.consume(fast.id, r.sizeBytes);
      }
    }), { numRuns: 500 });
  });

  it('gives capacity back on release and re-sorts', () => {
    const b = (name: string, totalBytes: number): BackendView => ({
      id: `bk-${name}`, name, tenants: null, state: 'enabled', role: 'primary', kind: 'block', zone: 'az0', tags: ['ssd'], capabilities: [],
      cost: 1, totalBytes, freeBytes: totalBytes, overcommitRatio: 1, reservedPercent: 0, provisionedBytes: 0, claimedBytes: 0,
    });
    const index = new PlacementIndex([b('a', 100), b('b', 90)]);
    const r: PlacementRequest = { sizeBytes: 20, kind: 'block', requiredTags: ['ssd'], forbiddenTags: [], requiredCapabilities: [], zone: 'az0', policy: 'spread', className: null, exclude: [] };
    expect(index.decide(r)?.name).toBe('a');
    index.consume('bk-a', 20);
    expect(index.decide(r)?.name).toBe('b');
    index.consume('bk-a', -20);
    expect(index.decide(r)?.name).toBe('a');
    index.consume('bk-a', 90);
    index.consume('bk-b', 80);
    expect(index.decide(r)).toBeNull();
  });
});
