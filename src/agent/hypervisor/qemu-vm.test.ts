import { describe, expect, it } from 'vitest';
import { validateFileRequest, validateIscsiRequest, type IscsiAttachRequest } from './qemu-vm.js';

const ok: IscsiAttachRequest = {
  volumeId: 'vol-abcdefghijklmnopqrst', portal: '10.99.3.1:3260', iqn: 'iqn.2024-01.lab.stowage:ab12:vol-abcdefghijklmnopqrst', lun: 1,
  chapUser: 'stw-user', chapSecret: 'very-secret-value', initiatorName: 'iqn.2024-01.lab.stowage.client:h1', readOnly: false,
};

describe('validateIscsiRequest (runs before anything reaches QEMU)', () => {
  it('accepts a well-formed request, IPv6 portals and no CHAP', () => {
    expect(() => { validateIscsiRequest(ok); }).not.toThrow();
    expect(() => { validateIscsiRequest({ ...ok, portal: '[fd00::1]:3260' }); }).not.toThrow();
    const noChap: IscsiAttachRequest = { volumeId: ok.volumeId, portal: ok.portal, iqn: ok.iqn, lun: 1, initiatorName: ok.initiatorName, readOnly: true };
    expect(() => { validateIscsiRequest(noChap); }).not.toThrow();
  });

  it.each([
    ['portal', { portal: '10.99.3.1' }],
    ['portal', { portal: 'a b:1' }],
    ['iqn', { iqn: 'not-an-iqn' }],
    ['initiator', { initiatorName: 'x' }],
    ['lun', { lun: -1 }],
    ['lun', { lun: 1.5 }],
    ['chap', { chapSecret: '' }],
  ])('rejects a bad %s', (_what, patch) => {
    expect(() => { validateIscsiRequest({ ...ok, ...patch }); }).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }) as Error);
  });

  it('rejects CHAP with only one half, without naming the secret', () => {
    const secretOnly: IscsiAttachRequest = { volumeId: ok.volumeId, portal: ok.portal, iqn: ok.iqn, lun: 1, initiatorName: ok.initiatorName, readOnly: true, chapSecret: 'x' };
    expect(() => { validateIscsiRequest(secretOnly); }).toThrow(/both a user and a secret/);
    // The error is captured outside the catch, so the checks run (and fail) even if nothing throws.
    let err: unknown;
    try {
      validateIscsiRequest({ ...ok, chapUser: 'bad user' });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(String(err)).not.toContain(ok.chapSecret);
    expect(JSON.stringify(err)).not.toContain(ok.chapSecret);
  });
});

describe('validateFileRequest', () => {
  it('wants an absolute, normalized path and a known format', () => {
    expect(() => { validateFileRequest({ volumeId: ok.volumeId, path: '/srv/a.raw', format: 'raw', readOnly: false }); }).not.toThrow();
    for (const p of ['a.raw', '/srv/../etc/a.raw', '/srv//a.raw', '/srv/a\0.raw']) {
      expect(() => { validateFileRequest({ volumeId: ok.volumeId, path: p, format: 'raw', readOnly: false }); }).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }) as Error);
    }
  });
});
