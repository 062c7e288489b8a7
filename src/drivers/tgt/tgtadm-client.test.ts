import { describe, expect, it } from 'vitest';
import { classifyTgtadmError } from './tgtadm-client.js';

describe('classifyTgtadmError on real tgtadm 1.0.85 messages', () => {
  it.each([
    ['tgtadm: this access control rule already exists', 'exists'],
    ['tgtadm: this account already exists', 'exists'],
    ['tgtadm: this target already exists', 'exists'],
    ['tgtadm: this logical unit number already exists', 'exists'],
    ['tgtadm: this access control rule does not exist', 'missing'],
    ["tgtadm: can't find the account", 'missing'],
    ["tgtadm: can't find the target", 'missing'],
    ['tgtadm: this target is still active', 'active'],
    ['tgtadm: invalid request', 'invalid'],
    ['tgtadm: failed to send request hdr to tgt daemon, Transport endpoint is not connected', 'unreachable'],
  ] as const)('%s -> %s', (text, kind) => {
    expect(classifyTgtadmError(text)).toBe(kind);
  });
});
