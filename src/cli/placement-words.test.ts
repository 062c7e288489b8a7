import { describe, expect, it } from 'vitest';
import type { PlacementSummary } from '../core/schemas/placement-schema.js';
import { describePlacement } from './placement-words.js';

const base: PlacementSummary = {
  policy: 'cheapest', className: null, candidates: 3, rejected: { capacity: 1, tags: 1 },
  top: [{ backend: 'fast', score: 12.5, usableBytes: 10 * 1024 ** 3, cost: 2 }], winner: 'fast', pinned: false, attempts: [],
  reason: 'fast won among 1 of 3 backends that passed every filter',
};

describe('describePlacement', () => {
  it('says the reason, candidates, rejections per filter, top candidates and attempts', () => {
    expect(describePlacement(base)).toEqual([
      'fast won among 1 of 3 backends that passed every filter.',
      'Considered 3 backends (policy cheapest).',
      'Rejected: 1 by the capacity filter, 1 by the tags filter.',
      'Top candidates: 1. fast (score 12.5, 10 GiB usable, cost 2).',
      'Attempts: no backend failed to provision it.',
    ]);
  });

  it('mentions pinning, classes and failed attempts', () => {
    const lines = describePlacement({ ...base, pinned: true, className: 'gold', rejected: {}, attempts: [{ backend: 'slow', ok: false, error: 'disk full' }] });
    expect(lines).toContain('Considered 3 backends (pinned to fast by request, class gold).');
    expect(lines).toContain('Rejected: none; every backend passed every filter.');
    expect(lines).toContain('Attempts: slow failed (disk full).');
  });
});
