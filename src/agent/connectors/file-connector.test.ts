import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileConnector, formatFromPath, isInside } from './file-connector.js';

describe('formatFromPath', () => {
  it('reads the dir driver extensions only', () => {
    expect(formatFromPath('/srv/vol-a.qcow2')).toBe('qcow2');
    expect(formatFromPath('/srv/vol-a.raw')).toBe('raw');
    expect(formatFromPath('/srv/vol-a.img')).toBeUndefined();
    expect(formatFromPath('/srv/vol-a')).toBeUndefined();
  });
});

describe('isInside', () => {
  it('is strict about prefixes and parents', () => {
    expect(isInside('/srv/pool', '/srv/pool/a.raw')).toBe(true);
    expect(isInside('/srv/pool', '/srv/pool/sub/a.raw')).toBe(true);
    expect(isInside('/srv/pool', '/srv/pool')).toBe(false);
    expect(isInside('/srv/pool', '/srv/pool2/a.raw')).toBe(false);
    expect(isInside('/srv/pool', '/srv/a.raw')).toBe(false);
    expect(isInside('/srv/pool', '/srv/pool/..x.raw')).toBe(true);
  });
});

describe('FileConnector.prepare (the checks before QEMU is touched)', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'stw-fileconn-'));
    mkdirSync(join(dir, 'pool'));
    writeFileSync(join(dir, 'outside.raw'), '');
    symlinkSync(join(dir, 'outside.raw'), join(dir, 'pool', 'escape.raw'));
  });

  afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

  it('refuses a symlink that leads out of the allowed root', async () => {
    const c = new FileConnector({ allowedRoots: [join(dir, 'pool')] });
    await expect(c.prepare('vol-abcdefghijklmnopqrst', { protocol: 'file', path: join(dir, 'pool', 'escape.raw'), mode: 'rw' }, 'rw'))
      .rejects.toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringContaining('outside the allowed directories') as unknown });
  });

  it('resolves a good path and maps the mode', async () => {
    writeFileSync(join(dir, 'pool', 'vol-abcdefghijklmnopqrst.qcow2'), '');
    const c = new FileConnector({ allowedRoots: [join(dir, 'pool')] });
    expect(await c.prepare('vol-abcdefghijklmnopqrst', { protocol: 'file', path: join(dir, 'pool', 'vol-abcdefghijklmnopqrst.qcow2'), mode: 'rw' }, 'ro'))
      .toEqual({ volumeId: 'vol-abcdefghijklmnopqrst', path: join(dir, 'pool', 'vol-abcdefghijklmnopqrst.qcow2'), format: 'qcow2', readOnly: true });
  });

  it('refuses missing files, unknown formats, relative paths and other protocols', async () => {
    const c = new FileConnector({ allowedRoots: [join(dir, 'pool')] });
    await expect(c.prepare('vol-a', { protocol: 'file', path: join(dir, 'pool', 'missing.raw'), mode: 'rw' }, 'rw')).rejects.toMatchObject({ code: 'VOLUME_NOT_FOUND' });
    await expect(c.prepare('vol-a', { protocol: 'file', path: join(dir, 'pool', 'x.vmdk'), mode: 'rw' }, 'rw')).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(c.prepare('vol-a', { protocol: 'file', path: 'pool/x.raw', mode: 'rw' }, 'rw')).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(c.prepare('vol-a', { protocol: 'iscsi', mode: 'rw' }, 'rw')).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(() => new FileConnector({ allowedRoots: ['relative'] })).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }) as Error);
  });
});
