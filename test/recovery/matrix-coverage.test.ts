import { describe, expect, it } from 'vitest';
import { DIR_KINDS, dirTier } from './dir-tier.js';
import { buildMatrix } from './matrix-kit.js';
import { HOSTS_KINDS, hostsTier } from './hosts-tier.js';
import { TGT_KINDS, tgtTier } from './tgt-tier.js';
import { POSITIONS, registeredOperations } from './matrix-cells.js';
import { INLINE_KINDS } from '../../src/operations/inline-kinds.js';
import { INLINE_POSITIONS, INLINE_TIER_KINDS, inlineCells } from './inline-tier.js';

/**
 * Kinds registered with the server that no matrix file drives yet (none today). Listed here on
 * purpose so any gap is visible: this list must equal exactly the
 * registered kinds without a tier, so a newly registered kind fails this test until a tier covers
 * it, and covering a kind fails it until the kind is removed from here.
 */
const NOT_YET_IN_THE_MATRIX: readonly string[] = [];

/** Every tier of the kill -9 matrix and the kinds its files drive. */
const TIERS: Readonly<Record<string, readonly string[]>> = { dir: DIR_KINDS, tgt: TGT_KINDS, hosts: HOSTS_KINDS };

describe('the kill -9 matrix covers every registered operation kind and step', () => {
  it('every registered kind is driven by a matrix tier (or is a listed, known gap)', async () => {
    const registered = (await registeredOperations()).map((o) => o.kind);
    expect(new Set(registered).size, 'kinds registered twice').toBe(registered.length);
    const covered = Object.values(TIERS).flat();
    expect(covered.filter((k) => !registered.includes(k)), 'matrix kinds the server no longer registers').toEqual([]);
    expect(registered.filter((k) => !covered.includes(k)).sort(), 'registered kinds with no matrix coverage').toEqual([...NOT_YET_IN_THE_MATRIX].sort());
  });

  it('the dir tier kills every step of its kinds before, at :done and after, and each kind during compensation', async () => {
    const ops = await registeredOperations();
    const matrix = await buildMatrix(dirTier);
    const points = matrix.rounds.flat().map((c) => c.failpoint).sort();
    const want = DIR_KINDS.flatMap((k) => {
      const op = ops.find((o) => o.kind === k);
      if (!op) throw new Error(`${k} is not registered`);
      expect(op.steps.length, `${k} has no steps`).toBeGreaterThan(0);
      return [...op.steps.flatMap((s) => POSITIONS.map((p) => `${k}/${s}:${p}`)), `${k}/compensate:before`];
    }).sort();
    expect(points).toEqual(want);
    for (const k of DIR_KINDS) expect(matrix.scenarios.some((s) => s.kind === k), `${k} has no scenario`).toBe(true);
    // One failpoint per kind per process: two cells of a kind never share a round.
    for (const round of matrix.rounds) expect(new Set(round.map((c) => c.kind)).size).toBe(round.length);
  });

  it('the tgt tier kills every step of its kinds before, at :done and after', async () => {
    const ops = await registeredOperations();
    const matrix = await buildMatrix(tgtTier);
    const want = TGT_KINDS.flatMap((k) => (ops.find((o) => o.kind === k)?.steps ?? []).flatMap((s) => POSITIONS.map((p) => `${k}/${s}:${p}`))).sort();
    expect(want.length).toBeGreaterThan(0);
    expect(matrix.rounds.flat().map((c) => c.failpoint).sort()).toEqual(want);
    for (const k of TGT_KINDS) expect(matrix.scenarios.some((s) => s.kind === k), `${k} has no scenario`).toBe(true);
  });

  it('the hosts tier kills every step of its kinds before, at :done and after', async () => {
    const ops = await registeredOperations();
    const matrix = await buildMatrix(hostsTier());
    const want = HOSTS_KINDS.flatMap((k) => (ops.find((o) => o.kind === k)?.steps ?? []).flatMap((s) => POSITIONS.map((p) => `${k}/${s}:${p}`))).sort();
    expect(want.length).toBeGreaterThan(0);
    expect(matrix.rounds.flat().map((c) => c.failpoint).sort()).toEqual(want);
    for (const k of HOSTS_KINDS) expect(matrix.scenarios.some((s) => s.kind === k), `${k} has no scenario`).toBe(true);
  });

  it('every inline-recorded kind is killed before and after its commit (and none is also a stepped kind)', async () => {
    const registered = (await registeredOperations()).map((o) => o.kind);
    expect(INLINE_KINDS.filter((k) => registered.includes(k)), 'kinds both inline and registered with steps').toEqual([]);
    expect(new Set(INLINE_KINDS).size, 'inline kinds listed twice').toBe(INLINE_KINDS.length);
    expect([...INLINE_TIER_KINDS].sort(), 'inline kinds with a scenario in the inline tier').toEqual([...INLINE_KINDS].sort());
    const want = INLINE_KINDS.flatMap((k) => INLINE_POSITIONS.map((p) => `${k}/record:${p}`)).sort();
    expect(inlineCells().map((c) => c.failpoint).sort()).toEqual(want);
  });
});
