import { describe, expect, it } from 'vitest';
import { usableBytes } from '../core/capacity.js';
import { compareCandidates, decide, FILTERS, type BackendView, type PlacementRequest } from './placement.js';

const GiB = 1024 ** 3;

function backend(name: string, over: Partial<BackendView> = {}): BackendView {
  return {
    id: `bk-${name}`, name, tenants: null, state: 'enabled', role: 'primary', kind: 'block', zone: 'az1', tags: ['ssd'],
    capabilities: ['thin', 'snapshot', 'format.raw'], cost: 1, totalBytes: 100 * GiB, freeBytes: 100 * GiB,
    overcommitRatio: 1, reservedPercent: 0, provisionedBytes: 0, claimedBytes: 0, ...over,
  };
}

function request(over: Partial<PlacementRequest> = {}): PlacementRequest {
  return {
    sizeBytes: 10 * GiB, kind: 'block', requiredTags: [], forbiddenTags: [], requiredCapabilities: [], zone: null,
    policy: 'cheapest', className: null, exclude: [], ...over,
  };
}

function rejection(b: BackendView, r: PlacementRequest): string | null {
  const v = decide([b], r).verdicts[0];
  return v?.filter ?? null;
}

describe('usableBytes', () => {
  it('is total × overcommit − provisioned − claimed − reserve (reserve of the raw total)', () => {
    expect(usableBytes({ totalBytes: 1000, overcommitRatio: 2, reservedPercent: 10, provisionedBytes: 300, claimedBytes: 200 })).toBe(2000 - 300 - 200 - 100);
  });
  it('may go negative for an overfull backend', () => {
    expect(usableBytes({ totalBytes: 100, overcommitRatio: 1, reservedPercent: 0, provisionedBytes: 150, claimedBytes: 0 })).toBe(-50);
  });
});

describe('filters', () => {
  it('names every filter the issue lists', () => {
    expect(FILTERS.map((f) => f.name)).toEqual(['retry', 'state', 'node', 'role', 'tenant', 'kind', 'zone', 'tags', 'capabilities', 'capacity']);
  });

  it('rejects by state, role, kind and zone with the filter that did it', () => {
    expect(rejection(backend('a', { state: 'disabled' }), request())).toBe('state');
    expect(rejection(backend('a', { state: 'offline' }), request())).toBe('state');
    expect(rejection(backend('a', { role: 'backup' }), request())).toBe('role');
    expect(rejection(backend('a', { kind: 'file' }), request())).toBe('kind');
    expect(rejection(backend('a', { zone: 'az2' }), request({ zone: 'az1' }))).toBe('zone');
    expect(rejection(backend('a', { zone: 'az2' }), request({ zone: null }))).toBeNull();
  });

  it('rejects backends on a node that is not placeable, saying which node and why', () => {
    const on = (state: string, adminState = 'active'): BackendView => backend('a', { node: { name: 'sn1', state, adminState } });
    expect(decide([on('unreachable')], request()).verdicts[0]).toMatchObject({ passed: false, filter: 'node', reason: 'node sn1 is unreachable' });
    expect(decide([on('syncing')], request()).verdicts[0]).toMatchObject({ filter: 'node', reason: 'node sn1 is syncing' });
    expect(decide([on('draining')], request()).verdicts[0]).toMatchObject({ filter: 'node', reason: 'node sn1 is draining' });
    expect(decide([on('ready', 'draining')], request()).verdicts[0]).toMatchObject({ filter: 'node', reason: 'node sn1 is draining' });
    expect(decide([on('auth_failed')], request()).verdicts[0]).toMatchObject({ filter: 'node', reason: 'node sn1 is auth failed' });
    expect(rejection(on('ready'), request())).toBeNull();
    expect(rejection(backend('a', { node: null }), request())).toBeNull();
  });

  it('checks required and forbidden tags', () => {
    const d = decide([backend('a', { tags: ['ssd'] })], request({ requiredTags: ['ssd', 'fast'] }));
    expect(d.verdicts[0]).toMatchObject({ filter: 'tags', reason: 'lacks required tag fast' });
    expect(rejection(backend('a', { tags: ['ssd', 'slow'] }), request({ forbiddenTags: ['slow'] }))).toBe('tags');
    expect(rejection(backend('a', { tags: ['ssd'] }), request({ requiredTags: ['ssd'], forbiddenTags: ['slow'] }))).toBeNull();
  });

  it('checks required capabilities', () => {
    const d = decide([backend('a')], request({ requiredCapabilities: ['snapshot.offload'] }));
    expect(d.verdicts[0]).toMatchObject({ passed: false, filter: 'capabilities', reason: 'lacks capability snapshot.offload' });
    expect(rejection(backend('a', { capabilities: ['snapshot.offload'] }), request({ requiredCapabilities: ['snapshot.offload'] }))).toBeNull();
  });

  it('hides other tenants\' backends but shares the default tenant\'s', () => {
    expect(rejection(backend('a', { tenants: ['tn-other'] }), request({ tenantId: 'tn-me' }))).toBe('tenant');
    expect(rejection(backend('a', { tenants: ['tn-other', 'tn-me'] }), request({ tenantId: 'tn-me' }))).toBeNull();
    expect(rejection(backend('a', { tenants: null }), request({ tenantId: 'tn-me' }))).toBeNull();
  });

  it('uses the one capacity function: reserve, overcommit and claims all count', () => {
    const r = request({ sizeBytes: 10 * GiB });
    expect(rejection(backend('a', { totalBytes: 10 * GiB }), r)).toBeNull();
    expect(rejection(backend('a', { totalBytes: 10 * GiB, reservedPercent: 1 }), r)).toBe('capacity');
    expect(rejection(backend('a', { totalBytes: 10 * GiB, claimedBytes: 1 }), r)).toBe('capacity');
    expect(rejection(backend('a', { totalBytes: 10 * GiB, provisionedBytes: 10 * GiB, overcommitRatio: 2 }), r)).toBeNull();
    const v = decide([backend('a', { totalBytes: 100 * GiB, claimedBytes: 30 * GiB, reservedPercent: 10 })], request({ policy: 'spread' })).verdicts[0];
    expect(v?.usableBytes).toBe(60 * GiB);
    expect(v?.score).toBe(60 * GiB);
  });

  it('excludes backends that already failed the request', () => {
    expect(rejection(backend('a'), request({ exclude: ['bk-a'] }))).toBe('retry');
  });
});

describe('policies', () => {
  const fleet = [
    backend('big-expensive', { cost: 5, totalBytes: 1000 * GiB }),
    backend('small-cheap', { cost: 1, totalBytes: 50 * GiB }),
    backend('mid-cheap', { cost: 1, totalBytes: 200 * GiB }),
    backend('tight', { cost: 3, totalBytes: 12 * GiB }),
  ];

  it('cheapest: lowest cost, then most usable', () => {
    expect(decide(fleet, request({ policy: 'cheapest' })).winner?.name).toBe('mid-cheap');
  });
  it('spread: most usable', () => {
    expect(decide(fleet, request({ policy: 'spread' })).winner?.name).toBe('big-expensive');
  });
  it('pack: least usable that still fits', () => {
    expect(decide(fleet, request({ policy: 'pack' })).winner?.name).toBe('tight');
    expect(decide(fleet, request({ policy: 'pack', sizeBytes: 13 * GiB })).winner?.name).toBe('small-cheap');
  });
  it('breaks ties by name', () => {
    const twins = [backend('b'), backend('a'), backend('c')];
    for (const policy of ['cheapest', 'spread', 'pack'] as const) expect(decide(twins, request({ policy })).winner?.name).toBe('a');
  });
  it('cheapest compares usable exactly even at large costs (no float mixing)', () => {
    const a = { name: 'a', cost: 1_000_000, usable: 5_000_000_000_001 };
    const b = { name: 'b', cost: 1_000_000, usable: 5_000_000_000_002 };
    expect(compareCandidates(b, a, 'cheapest')).toBeLessThan(0);
  });

  it('explains the decision: winner, rejections per filter, top candidates, class and policy', () => {
    const d = decide([...fleet, backend('off', { state: 'disabled' }), backend('hdd', { tags: ['hdd'] })], request({ requiredTags: ['ssd'], className: 'gold' }));
    expect(d.summary).toMatchObject({ policy: 'cheapest', className: 'gold', candidates: 6, rejected: { state: 1, tags: 1 }, winner: 'mid-cheap' });
    expect(d.summary.top.map((t) => t.backend)).toEqual(['mid-cheap', 'small-cheap', 'tight']);
    expect(d.summary.reason).toContain('class gold');
    expect(d.verdicts).toHaveLength(6);
  });

  it('says why nothing fits', () => {
    const d = decide([backend('a', { totalBytes: GiB })], request());
    expect(d.winner).toBeNull();
    expect(d.summary.reason).toContain('1 by capacity');
  });
});
