import { describe, expect, it } from 'vitest';
import { exclusivityConflicts } from './access-rules.js';

describe('exclusivityConflicts: a read-write volume is for one host at a time', () => {
  const rw = { host: 'a', mode: 'rw' as const };
  const ro = { host: 'b', mode: 'ro' as const };

  it('a read-write newcomer conflicts with every other holder', () => {
    expect(exclusivityConflicts([rw, ro], 'rw', false)).toEqual([rw, ro]);
  });

  it('a read-only newcomer conflicts only with read-write holders', () => {
    expect(exclusivityConflicts([rw, ro], 'ro', false)).toEqual([rw]);
    expect(exclusivityConflicts([ro], 'ro', false)).toEqual([]);
  });

  it('a multi-attach volume conflicts with nobody', () => {
    expect(exclusivityConflicts([rw, ro], 'rw', true)).toEqual([]);
  });
});
