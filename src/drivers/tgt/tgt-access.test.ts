import { describe, expect, it } from 'vitest';
import { StowageError } from '../../core/errors.js';
import { chapDigest, chapDigestMatches } from './grant-ledger.js';
import { aclEntriesOf, assertChap, assertHost, ledgerEntry, lunReadonlyFor, tgtAccountName } from './tgt-access.js';

describe('lunReadonlyFor', () => {
  it('is read-only only when there are grants and all of them are ro', () => {
    expect(lunReadonlyFor([])).toBe(false);
    expect(lunReadonlyFor([{ mode: 'ro' }, { mode: 'ro' }])).toBe(true);
    expect(lunReadonlyFor([{ mode: 'ro' }, { mode: 'rw' }])).toBe(false);
  });
});

describe('aclEntriesOf', () => {
  it('binds addresses only, and the initiator name only for hosts without an address', () => {
    expect(aclEntriesOf({ addresses: ['10.99.1.2', 'fd00::2'], initiatorName: 'iqn.2024-01.x:h1' })).toEqual([
      { kind: 'address', value: '10.99.1.2' }, { kind: 'address', value: 'fd00::2' },
    ]);
    expect(aclEntriesOf({ addresses: [], initiatorName: 'iqn.2024-01.x:h1' })).toEqual([{ kind: 'initiator', value: 'iqn.2024-01.x:h1' }]);
    expect(aclEntriesOf({ addresses: [] })).toEqual([]);
  });
});

describe('tgtAccountName and ledgerEntry', () => {
  it('gives every volume its own tgtd account for a shared CHAP user, and records no secret', () => {
    expect(tgtAccountName('stw-h1', 'vol-aaaaaaaaaaaaaaaaaaaa')).toBe('stw-h1.vol-aaaaaaaaaaaaaaaaaaaa');
    const grant = { host: { name: 'h1', addresses: ['10.0.0.2'] }, mode: 'ro' as const, chap: { user: 'stw-h1', secret: 'TopSecret123456' } };
    const e = ledgerEntry('vol-aaaaaaaaaaaaaaaaaaaa', grant, undefined);
    expect(e).toMatchObject({ host: 'h1', addresses: ['10.0.0.2'], mode: 'ro', chapUser: 'stw-h1.vol-aaaaaaaaaaaaaaaaaaaa' });
    expect(JSON.stringify(e)).not.toContain('TopSecret123456');
    expect(ledgerEntry('vol-aaaaaaaaaaaaaaaaaaaa', grant, e).chapDigest).toBe(e.chapDigest);
    expect(ledgerEntry('vol-aaaaaaaaaaaaaaaaaaaa', { ...grant, chap: { user: 'stw-h1', secret: 'OtherSecret12345' } }, e).chapDigest).not.toBe(e.chapDigest);
  });
});

describe('assertHost and assertChap', () => {
  it('refuses what must not reach tgtadm', () => {
    expect(() => { assertHost({ name: 'h', addresses: ['10.0.0.1; rm -rf /'] }); }).toThrow(StowageError);
    expect(() => { assertHost({ name: 'h', addresses: [], initiatorName: 'not an iqn' }); }).toThrow(StowageError);
    expect(() => { assertHost({ name: 'h', addresses: [] }); }).toThrow(/neither an address nor an initiator name/);
    expect(() => { assertChap({ host: { name: 'h', addresses: ['10.0.0.1'] }, mode: 'rw', chap: { user: 'u', secret: 'short' } }); }).toThrow(/12-255/);
    expect(() => { assertChap({ host: { name: 'h', addresses: ['10.0.0.1'] }, mode: 'rw', chap: { user: '-u', secret: 'LongEnough12345' } }); }).toThrow(/CHAP user/);
    expect(() => { assertChap({ host: { name: 'h', addresses: ['10.0.0.1'] }, mode: 'rw', chap: { user: 'stw-h', secret: 'has space 123456' } }); }).toThrow(/12-255/);
  });
});

describe('chapDigest', () => {
  it('matches the same secret and nothing else, and never contains the secret', () => {
    const d = chapDigest('VerySecret12345');
    expect(d).not.toContain('VerySecret12345');
    expect(chapDigestMatches(d, 'VerySecret12345')).toBe(true);
    expect(chapDigestMatches(d, 'VerySecret12346')).toBe(false);
    expect(chapDigestMatches(undefined, 'VerySecret12345')).toBe(false);
  });
});
