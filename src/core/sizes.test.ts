import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { StowageError } from './errors.js';
import { MAX_SIZE_BYTES, formatSize, parseSize } from './sizes.js';
import { assertValidName } from './names.js';

describe('parseSize', () => {
  it.each([
    ['10G', 10 * 1024 ** 3], ['10GiB', 10 * 1024 ** 3], ['10GB', 10 * 1000 ** 3], ['512MiB', 512 * 1024 ** 2],
    ['1T', 1024 ** 4], ['4096', 4096], ['1.5G', 1.5 * 1024 ** 3], [' 2 m ', 2 * 1024 ** 2], ['1k', 1024],
  ])('parses %s', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['', '0', '-1G', '10Q', 'G', '1.5', '1e9', '10 G B', '9999P', 'NaN', '0x10'])('rejects %j with INVALID_SIZE', (text) => {
    expect(() => parseSize(text)).toThrow(StowageError);
    try { parseSize(text); } catch (err) { expect((err as StowageError).code).toBe('INVALID_SIZE'); }
  });

  it('round-trips whole binary units through formatSize', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 1023 }), fc.constantFrom('KiB', 'MiB', 'GiB', 'TiB'), (n, unit) => {
      const bytes = parseSize(`${n}${unit}`);
      expect(formatSize(bytes)).toBe(`${n} ${unit}`);
    }));
  });

  it('never returns anything but a positive safe integer up to the maximum', () => {
    fc.assert(fc.property(fc.string(), (s) => {
      try {
        const b = parseSize(s);
        expect(Number.isSafeInteger(b) && b > 0 && b <= MAX_SIZE_BYTES).toBe(true);
      } catch (err) {
        expect((err as StowageError).code).toBe('INVALID_SIZE');
      }
    }));
  });
});

describe('assertValidName', () => {
  it.each(['demo', 'db-1', 'a.b_c', 'A1', 'x'.repeat(63)])('accepts %s', (n) => {
    expect(() => { assertValidName(n); }).not.toThrow();
  });

  it.each(['', 'a/b', '..', 'a..b', '.hidden', '-x', 'a;b', '$(touch x)', 'a b', 'a\nb', 'a\u0000b', 'x'.repeat(64), 'é'])('rejects %j', (n) => {
    expect(() => { assertValidName(n); }).toThrow(/not allowed/);
  });

  it('accepted names are always safe as path components', () => {
    fc.assert(fc.property(fc.string({ maxLength: 70 }), (s) => {
      let ok = true;
      try { assertValidName(s); } catch { ok = false; }
      if (ok) expect(/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(s) && !s.includes('..') && !s.includes('/')).toBe(true);
    }));
  });
});
