import { describe, expect, it } from 'vitest';
import { formatEnrollmentToken, newEnrollmentToken, parseEnrollmentToken } from './enrollment-token.js';

describe('enrollment tokens', () => {
  it('round-trip with and without an API pin', () => {
    const fp = `sha256:${'ab'.repeat(32)}`;
    const a = newEnrollmentToken('node', fp);
    expect(parseEnrollmentToken(a.token)).toEqual(a.parsed);
    const b = newEnrollmentToken('agent', null);
    expect(parseEnrollmentToken(b.token)).toEqual(b.parsed);
    expect(formatEnrollmentToken(b.parsed)).toMatch(/^stw1\.agent\.[A-Za-z0-9_-]+\.plain$/);
  });

  it('refuses other shapes without echoing them', () => {
    for (const bad of ['', 'stw1.node.short.plain', 'stw2.node.aaaaaaaaaaaaaaaaaaaaaaaa.plain', `stw1.admin.${'a'.repeat(32)}.plain`, `stw1.node.${'a'.repeat(32)}.xyz`]) {
      expect(() => parseEnrollmentToken(bad)).toThrow(/not an enrollment token/);
      try { parseEnrollmentToken(bad); } catch (e) { expect((e as Error).message).not.toContain('aaaaaaaaaaaaaaaa'); }
    }
  });
});
