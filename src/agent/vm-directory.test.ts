import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VmDirectory, vmNameFromFileName } from './vm-directory.js';

describe('vmNameFromFileName', () => {
  it('takes <name>.qmp with a safe name only', () => {
    expect(vmNameFromFileName('web-1.qmp')).toBe('web-1');
    expect(vmNameFromFileName('db_2.prod.qmp')).toBe('db_2.prod');
    for (const bad of ['web-1.sock', '.qmp', '.hidden.qmp', 'a..b.qmp', 'a b.qmp', `${'x'.repeat(64)}.qmp`, 'web-1.qmp.bak']) {
      expect(vmNameFromFileName(bad)).toBeUndefined();
    }
  });
});

describe('VmDirectory (real unix sockets in a temp directory)', () => {
  let dir: string;
  const servers: net.Server[] = [];
  const listen = (path: string): Promise<void> => new Promise((resolve) => {
    const s = net.createServer();
    servers.push(s);
    s.listen(path, resolve);
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stw-vmdir-'));
    await listen(join(dir, 'vm-b.qmp'));
    await listen(join(dir, 'vm-a.qmp'));
    await listen(join(dir, 'not-qmp.sock'));
    writeFileSync(join(dir, 'plain-file.qmp'), '');
    mkdirSync(join(dir, 'subdir.qmp'));
    symlinkSync(join(dir, 'vm-a.qmp'), join(dir, 'link.qmp'));
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists only sockets named <vm>.qmp, sorted by name', async () => {
    const vms = await new VmDirectory(dir).list();
    expect([...vms.entries()]).toEqual([['vm-a', join(dir, 'vm-a.qmp')], ['vm-b', join(dir, 'vm-b.qmp')]]);
  });

  it('resolves one VM, and refuses missing or unsafe names', async () => {
    const d = new VmDirectory(dir);
    expect(await d.socketFor('vm-b')).toBe(join(dir, 'vm-b.qmp'));
    await expect(d.socketFor('plain-file')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(d.socketFor('nope')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(d.socketFor('../etc/x')).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  });

  it('fails clearly on a missing directory and refuses a relative one', async () => {
    await expect(new VmDirectory(join(dir, 'missing')).list()).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    expect(() => new VmDirectory('relative/dir')).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }) as Error);
  });
});
