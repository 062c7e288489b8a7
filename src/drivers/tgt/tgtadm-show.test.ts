import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isAddressAclEntry, parseTgtadmAccounts, parseTgtadmShow } from './tgtadm-show.js';

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

describe('parseTgtadmShow on output captured from tgt 1.0.85 with live sessions', () => {
  const targets = parseTgtadmShow(fixture('show-target-sessions.txt'));

  it('finds every target with its tid and IQN', () => {
    expect(targets.map((t) => [t.tid, t.iqn, t.state])).toEqual([
      [1, 'iqn.2026-11.io.stowage:vol-aaaaaaaaaaaaaaaaaaaa', 'ready'],
      [3, 'iqn.2026-11.io.stowage:vol-bbbbbbbbbbbbbbbbbbbb', 'ready'],
      [5, 'iqn.other.vendor:foo', 'ready'],
    ]);
  });

  it('reads sessions with initiator names and connection addresses', () => {
    expect(targets[0]?.sessions).toEqual([
      { sid: 1, initiator: 'iqn.2008-11.org.linux-kvm', connections: [{ cid: 0, address: '10.99.77.2' }] },
      { sid: 3, initiator: 'iqn.2024-01.lab.client:host-a', connections: [{ cid: 0, address: '10.99.77.2' }] },
    ]);
    expect(targets[1]?.sessions).toEqual([{ sid: 2, initiator: 'iqn.2008-11.org.linux-kvm', connections: [{ cid: 0, address: '10.99.77.3' }] }]);
    expect(targets[2]?.sessions).toEqual([]);
  });

  it('reads LUNs with backing paths, thin and readonly flags', () => {
    expect(targets[0]?.luns).toEqual([
      { lun: 0, type: 'controller', readonly: false, thin: false, sizeMb: 0 },
      { lun: 1, type: 'disk', backingPath: '/tmp/cap5719/lun1.img', readonly: false, thin: true, sizeMb: 67 },
    ]);
    expect(targets[1]?.luns[1]).toEqual({ lun: 1, type: 'disk', backingPath: '/tmp/cap5719/lun2.img', readonly: true, thin: false, sizeMb: 34 });
    expect(targets[2]?.luns.map((l) => l.lun)).toEqual([0]);
  });

  it('separates incoming accounts from the outgoing one', () => {
    expect(targets[0]?.accounts).toEqual(['usera', 'userb']);
    expect(targets[0]?.outgoingAccount).toBe('tgtout');
    expect(targets[1]?.accounts).toEqual([]);
    expect(targets[1]?.outgoingAccount).toBeUndefined();
  });

  it('splits the ACL into address rules and initiator-name rules', () => {
    expect(targets[0]?.aclAddresses).toEqual(['10.99.77.2', '10.99.77.3']);
    expect(targets[0]?.aclInitiators).toEqual(['iqn.2024-01.lab.client:host-a']);
    expect(targets[1]?.aclAddresses).toEqual(['ALL']);
    expect(targets[2]?.aclAddresses).toEqual([]);
    expect(targets[2]?.aclInitiators).toEqual([]);
  });

  it('returns no targets for the empty output of an idle tgtd', () => {
    expect(parseTgtadmShow('')).toEqual([]);
  });

  it('never throws and never invents targets on arbitrary text without a Target header', () => {
    fc.assert(fc.property(fc.string(), (s) => {
      const text = s.replace(/Target /g, 'Tgt ');
      expect(parseTgtadmShow(text)).toEqual([]);
    }));
  });
});

describe('parseTgtadmAccounts', () => {
  it('lists account names from captured output', () => {
    expect(parseTgtadmAccounts(fixture('show-account.txt'))).toEqual(['tgtout', 'userb', 'usera']);
  });
});

describe('isAddressAclEntry', () => {
  it('classifies addresses, CIDRs, ALL and initiator names', () => {
    for (const a of ['10.99.0.2', '10.0.0.0/8', 'ALL', 'fd00::2', '[fd00::2]']) expect(isAddressAclEntry(a)).toBe(true);
    for (const n of ['iqn.2024-01.lab.client:host-a', 'eui.0123456789abcdef', 'naa.5000c5003c5a1b2f']) expect(isAddressAclEntry(n)).toBe(false);
  });
});
