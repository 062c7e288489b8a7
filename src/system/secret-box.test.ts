import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SecretBox } from './secret-box.js';

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'stowage-secret-box-')); });
afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

/** Replaces the base64 part `index` (1 = iv, 2 = tag, 3 = data) of a sealed secret with a one-bit-flipped copy. */
function flipBit(sealed: string, index: number): string {
  const parts = sealed.split(':');
  const bytes = Buffer.from(parts[index] ?? '', 'base64');
  bytes[0] = (bytes[0] ?? 0) ^ 0x01;
  parts[index] = bytes.toString('base64');
  return parts.join(':');
}

describe('SecretBox', () => {
  it('round-trips a secret, and the sealed form does not contain it', () => {
    const box = SecretBox.fromKeyFile(join(dir, 'k', 'secret.key'));
    const plain = 'chap-secret-0123456789abcdef';
    const sealed = box.encrypt(plain);
    expect(sealed.startsWith('v1:')).toBe(true);
    expect(sealed).not.toContain(plain);
    expect(sealed).not.toContain(Buffer.from(plain).toString('base64'));
    expect(box.decrypt(sealed)).toBe(plain);
    // A fresh IV each time: the same secret never seals to the same text.
    expect(box.encrypt(plain)).not.toBe(sealed);
  });

  it('creates the key file with mode 0600 and reuses it on the next start', () => {
    const path = join(dir, 'secret.key');
    const sealed = SecretBox.fromKeyFile(path).encrypt('kept');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const key = readFileSync(path, 'utf8');
    expect(SecretBox.fromKeyFile(path).decrypt(sealed)).toBe('kept');
    expect(readFileSync(path, 'utf8')).toBe(key);
  });

  it('detects tampering with the data, the tag or the IV', () => {
    const box = SecretBox.fromKeyFile(join(dir, 'secret.key'));
    const sealed = box.encrypt('do not change me');
    for (const part of [1, 2, 3]) expect(() => box.decrypt(flipBit(sealed, part))).toThrow();
    expect(() => box.decrypt(sealed.replace(/^v1:/, 'v2:'))).toThrow('not a sealed secret');
    expect(() => box.decrypt('plain text')).toThrow('not a sealed secret');
  });

  it('refuses to open a secret sealed under another key', () => {
    const sealed = SecretBox.fromKeyFile(join(dir, 'a.key')).encrypt('only for a');
    expect(() => SecretBox.fromKeyFile(join(dir, 'b.key')).decrypt(sealed)).toThrow();
  });

  it('rejects a key file that does not hold a 32-byte key', () => {
    const path = join(dir, 'short.key');
    writeFileSync(path, Buffer.alloc(16).toString('base64'), { mode: 0o600 });
    expect(() => SecretBox.fromKeyFile(path)).toThrow('does not hold a 32-byte key');
  });
});
