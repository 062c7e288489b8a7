import { describe, expect, it } from 'vitest';
import { btrfsDriverFactory } from '../btrfs/btrfs-driver.js';
import { dirDriverFactory } from '../dir/dir-driver.js';
import { normalizeTgtUri } from '../tgt/tgt-driver.js';
import { parsePathUri } from './path-uri.js';
import { DriverRegistry } from './registry.js';

const registry = new DriverRegistry([dirDriverFactory, btrfsDriverFactory]);

function errorOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    return err as { code: string; message: string };
  }
  throw new Error('expected an error');
}

describe('local directory URIs', () => {
  it('decodes the path once, normalises it and stores exactly the directory used', () => {
    expect(parsePathUri('dir:///srv/a/..%2Fb', 'dir', 'x')).toEqual({ dir: '/srv/b', search: '', canonical: 'dir:///srv/b' });
    expect(registry.canonicalUri('dir:///srv//vols/./x/../?format=qcow2')).toBe('dir:///srv/vols?format=qcow2');
    expect(registry.canonicalUri('dir:///srv/my%20vols/')).toBe('dir:///srv/my%20vols');
    expect(registry.canonicalUri('btrfs:///mnt/pool/../pool2')).toBe('btrfs:///mnt/pool2');
    // The canonical form builds the same directory again: what `backend list` shows is what is used.
    const driver = registry.create(registry.canonicalUri('dir:///srv/a/..%2Fb'), {}, { runner: { run: () => Promise.reject(new Error('no')) }, dataDir: '/tmp' });
    expect(driver.localDir).toBe('/srv/b');
  });

  it('names the URI as typed and what is wrong with it', () => {
    const root = errorOf(() => registry.canonicalUri('dir:///etc/../..'));
    expect(root.code).toBe('INVALID_DRIVER_URI');
    expect(root.message).toContain('"dir:///etc/../.."');
    expect(root.message).toMatch(/resolves to the filesystem root/);
    expect(errorOf(() => registry.canonicalUri('dir:///')).message).toMatch(/names the filesystem root/);
    expect(errorOf(() => registry.canonicalUri('dir://host/srv')).message).toMatch(/"dir:\/\/host\/srv" names a host \("host"\)/);
    expect(errorOf(() => registry.canonicalUri('dir:///srv/%zz')).message).toMatch(/broken %-escape in its path "\/srv\/%zz"/);
    expect(errorOf(() => registry.canonicalUri('dir:///srv/a%00b')).message).toMatch(/control character/);
    expect(errorOf(() => registry.canonicalUri('dir:///srv#x')).message).toMatch(/fragment/);
  });

  it('normalises a tgt backing the same way, and says which part is wrong', () => {
    expect(normalizeTgtUri('tgt://10.99.0.1:3260?backing=dir:///srv/luns/..%2Fother&control=7')).toBe('tgt://10.99.0.1:3260?backing=dir:///srv/other&control=7');
    const bad = errorOf(() => normalizeTgtUri('tgt://10.99.0.1:3260?backing=dir:///etc/../..&control=7'));
    expect(bad.code).toBe('INVALID_DRIVER_URI');
    expect(bad.message).toContain('backing="dir:///etc/../.."');
    expect(bad.message).toMatch(/resolves to the filesystem root/);
  });
});
