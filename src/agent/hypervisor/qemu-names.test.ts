import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ID_PREFIXES, newId, type IdKind } from '../../core/ids.js';
import { assertAgentVolumeId, parseDeviceId, parseNodeName, parseSecretId, QEMU_NODE_NAME_MAX_CHARS, qemuNamesFor } from './qemu-names.js';

const QEMU_ID_RE = /^[A-Za-z][A-Za-z0-9._-]*$/; // QEMU's id_wellformed()

describe('qemuNamesFor', () => {
  it('follows the naming convention', () => {
    expect(qemuNamesFor('vol-abcdefghijklmnopqrst')).toEqual({
      node: 'stw-vol-abcdefghijklmnopqrst',
      protocolNode: 'stw-vol-abcdefghijklmnopqrst-p',
      device: 'stw-dev-vol-abcdefghijklmnopqrst',
      secret: 'stw-vol-abcdefghijklmnopqrst-sec',
    });
  });

  it('fits QEMU limits for every id kind and parses back', () => {
    for (const kind of Object.keys(ID_PREFIXES) as IdKind[]) {
      const id = newId(kind);
      const n = qemuNamesFor(id);
      expect(n.protocolNode.length).toBeLessThanOrEqual(QEMU_NODE_NAME_MAX_CHARS);
      for (const name of Object.values(n)) expect(name).toMatch(QEMU_ID_RE);
      expect(parseNodeName(n.node)).toEqual({ volumeId: id, role: 'format' });
      expect(parseNodeName(n.protocolNode)).toEqual({ volumeId: id, role: 'protocol' });
      expect(parseDeviceId(n.device)).toBe(id);
      expect(parseDeviceId(`/machine/peripheral/${n.device}/virtio-backend`)).toBe(id);
      expect(parseSecretId(n.secret)).toBe(id);
    }
  });

  it('never mistakes one kind of name for another', () => {
    fc.assert(fc.property(fc.stringMatching(/^[a-z]{2,4}-[a-z2-7]{20}$/), (id) => {
      const n = qemuNamesFor(id);
      expect(parseDeviceId(n.node)).toBeUndefined();
      expect(parseNodeName(n.device)).toBeUndefined();
      expect(parseNodeName(n.secret)).toBeUndefined();
      expect(parseSecretId(n.protocolNode)).toBeUndefined();
    }));
  });

  it('rejects ids that are not ids', () => {
    for (const bad of ['', 'vol', 'vol-short', 'VOL-abcdefghijklmnopqrst', 'vol-abcdefghijklmnopqrst-p', 'vol-abcdefghijklmnopqrs1', 'volume-abcdefghijklmnopqrst', 'abcde-abcdefghijklmnopqrst', '../x']) {
      expect(() => { assertAgentVolumeId(bad); }).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }) as Error);
    }
  });

  it('ignores names that are not ours', () => {
    expect(parseNodeName('#block123')).toBeUndefined();
    expect(parseNodeName('stw-vol-abcdefghijklmnopqrst-q')).toBeUndefined();
    expect(parseDeviceId('scsi0')).toBeUndefined();
    expect(parseDeviceId('/machine/peripheral-anon/device[0]')).toBeUndefined();
    expect(parseSecretId('sec0')).toBeUndefined();
  });
});
