import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { tgtDrift } from './tgt-drift.js';
import { parseTgtadmShow } from './tgtadm-show.js';

const targets = parseTgtadmShow(readFileSync(new URL('./fixtures/show-target-sessions.txt', import.meta.url), 'utf8'));
const iqnOf = (id: string): string => `iqn.2026-11.io.stowage:${id}`;
const A = 'vol-aaaaaaaaaaaaaaaaaaaa';
const B = 'vol-bbbbbbbbbbbbbbbbbbbb';

describe('tgtDrift on output captured from tgt 1.0.85', () => {
  it('finds nothing missing when every expected target, LUN and ACL entry is there', () => {
    expect(tgtDrift(iqnOf, targets, [
      { volumeId: A, hosts: [{ addresses: ['10.99.77.2', '10.99.77.3'] }, { addresses: [], initiatorName: 'iqn.2024-01.lab.client:host-a' }] },
      { volumeId: B, hosts: [] },
    ])).toEqual([]);
  });

  it('names a lost target, a lost ACL entry, and ignores targets nobody expects', () => {
    expect(tgtDrift(iqnOf, targets, [
      { volumeId: 'vol-cccccccccccccccccccc', hosts: [{ addresses: ['10.99.77.9'] }] },
      { volumeId: B, hosts: [{ addresses: ['10.99.77.3'] }] },
    ])).toEqual(['target:vol-cccccccccccccccccccc', 'acl:vol-bbbbbbbbbbbbbbbbbbbb:10.99.77.3']);
  });

  it('finds everything missing on an empty (restarted) tgtd', () => {
    expect(tgtDrift(iqnOf, parseTgtadmShow(''), [{ volumeId: A, hosts: [{ addresses: ['10.99.77.2'] }] }])).toEqual([`target:${A}`]);
  });

  it('names a target that lost LUN 1', () => {
    const noLun = targets.map((t) => (t.iqn === iqnOf(A) ? { ...t, luns: t.luns.filter((l) => l.lun !== 1) } : t));
    expect(tgtDrift(iqnOf, noLun, [{ volumeId: A, hosts: [] }])).toEqual([`lun:${A}`]);
  });
});
