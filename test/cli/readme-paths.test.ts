import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, listensOn, pollUntil, REPO_ROOT } from '../helpers/server.js';
import { CliSession } from './cli-harness.js';

/**
 * Issue 8 point 6: README paths that had no test, each run through the built `stowage` CLI
 * against a real server: a cross-backend clone (the qemu-img host copy) compared byte for byte,
 * the 422 NO_VALID_BACKEND verdicts of a real create, `backend enable`, and `npm start`'s own
 * defaults (127.0.0.1:8750, ./.stowage, ~/.config/stowage/config.json).
 */

interface VolumeJson { id: string; name: string; state: string; backendName: string | null; sizeBytes: number }

describe('README paths through the built CLI', () => {
  let s: CliSession;
  let pools: string;
  const MiB = 1024 * 1024;

  const ok = async (args: readonly string[]): Promise<string> => {
    const r = await s.run(args);
    if (r.code !== 0) throw new Error(`stowage ${args.join(' ')} exited ${String(r.code)}:\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  const volume = (name: string): Promise<VolumeJson> => s.json<VolumeJson>(['volume', 'show', name]);
  const fileOf = (backendDir: string, v: VolumeJson): string => join(backendDir, `${v.id}.raw`);

  beforeAll(async () => {
    s = await CliSession.start({ defaultBackend: false, operationPollMs: 20 });
    pools = join(s.dir, 'pools');
    for (const p of ['fast', 'slow']) mkdirSync(join(pools, p), { recursive: true });
    await ok(['backend', 'create', 'fast', '--driver', `dir://${join(pools, 'fast')}`, '--cost', '1', '--tag', 'ssd']);
    await ok(['backend', 'create', 'slow', '--driver', `dir://${join(pools, 'slow')}`, '--cost', '5']);
    for (const b of ['fast', 'slow']) {
      await pollUntil(`backend ${b} enabled`, async () => ((await s.json<{ state: string }>(['backend', 'show', b])).state === 'enabled' ? true : undefined), 60_000, 100);
    }
  });

  afterAll(async () => {
    await s?.stop();
  });

  it('`volume create X --from-volume db1 --backend slow` copies db1 on the host (qemu-img) to the other backend, byte for byte', async () => {
    await ok(['volume', 'create', 'db1', '--size', '8M', '--tag', 'ssd']);
    const db1 = await volume('db1');
    expect(db1.backendName).toBe('fast');
    // Data the copy must carry: random bytes at the start, in the middle and at the very end.
    const src = fileOf(join(pools, 'fast'), db1);
    const fd = openSync(src, 'r+');
    for (const at of [0, 3 * MiB + 4096, 8 * MiB - 65536]) writeSync(fd, randomBytes(65536), 0, 65536, at);
    closeSync(fd);
    const out = await ok(['volume', 'create', 'db1-elsewhere', '--from-volume', 'db1', '--backend', 'slow']);
    expect(out).toContain('host copy (qemu-img convert) of volume db1 from fast to slow');
    const copy = await volume('db1-elsewhere');
    expect(copy).toMatchObject({ state: 'available', backendName: 'slow', sizeBytes: 8 * MiB });
    const a = readFileSync(src);
    const b = readFileSync(fileOf(join(pools, 'slow'), copy));
    expect(b.length).toBe(a.length);
    expect(b.equals(a)).toBe(true);
  });

  it('an unplaceable create is refused with 422 NO_VALID_BACKEND naming every backend\'s reason, and creates nothing', async () => {
    await ok(['backend', 'disable', 'slow']);
    try {
      const r = await s.run(['volume', 'create', 'huge', '--size', '900T', '--tag', 'ssd']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('NO_VALID_BACKEND');
      // The API answer carries one verdict per backend; the CLI's message says each one's reason.
      const api = await fetch(`${s.server.url}/v1/volumes`, {
        method: 'POST', headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'huge', sizeBytes: 900 * 1024 ** 4, requiredTags: ['ssd'] }),
      });
      expect(api.status).toBe(422);
      const body = await api.json() as { code: string; message: string; details: { verdicts: { backend: string; filter: string | null; reason: string | null }[] } };
      expect(body.code).toBe('NO_VALID_BACKEND');
      const verdicts = Object.fromEntries(body.details.verdicts.map((v) => [v.backend, v]));
      expect(Object.keys(verdicts).sort()).toEqual(['fast', 'slow']);
      expect(verdicts.fast?.reason).toMatch(/usable|capacity|needs/i);
      expect(verdicts.slow?.reason).toMatch(/disabled/i);
      for (const v of body.details.verdicts) {
        expect(v.reason).not.toBeNull();
        expect(body.message).toContain(v.backend);
        expect(r.stderr).toContain(v.backend);
      }
      expect(r.stderr).toMatch(/disabled/i);
      expect((await s.json<VolumeJson[]>(['volume', 'list'])).map((v) => v.name)).not.toContain('huge');
    } finally {
      await ok(['backend', 'enable', 'slow']);
    }
  });

  it('`backend disable` takes a backend out of placement and `backend enable` puts it back', async () => {
    await ok(['backend', 'disable', 'fast']);
    expect((await s.json<{ state: string }>(['backend', 'show', 'fast'])).state).toBe('disabled');
    await ok(['volume', 'create', 'while-disabled', '--size', '1M']);
    expect((await volume('while-disabled')).backendName).toBe('slow');
    await ok(['backend', 'enable', 'fast']);
    await pollUntil('fast enabled again', async () => ((await s.json<{ state: string }>(['backend', 'show', 'fast'])).state === 'enabled' ? true : undefined), 60_000, 100);
    await ok(['volume', 'create', 'after-enable', '--size', '1M']);
    // fast is the cheaper backend: placement picks it again.
    expect((await volume('after-enable')).backendName).toBe('fast');
  });
});

describe('`npm start` on its own defaults', () => {
  it('the built server with no overrides listens on 127.0.0.1:8750, keeps its store and `local` backend in ./.stowage and writes ~/.config/stowage/config.json (0600)', async () => {
    await ensureBuilt();
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe('node dist/main.js serve');
    const cwd = mkdtempSync(join(tmpdir(), 'stowage-npm-start-cwd-'));
    const home = mkdtempSync(join(tmpdir(), 'stowage-npm-start-home-'));
    // Nothing but PATH and HOME: no STOWAGE_* variable, no config file.
    const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'main.js'), 'serve'], { cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
    const exited = new Promise<void>((res) => child.once('exit', () => { res(); }));
    try {
      await pollUntil('the default server on 127.0.0.1:8750', async () => {
        if (child.exitCode !== null) throw new Error(`stowage serve exited:\n${out}`);
        const r = await fetch('http://127.0.0.1:8750/healthz', { signal: AbortSignal.timeout(2000) });
        // Only this child's answer counts (not some other server a developer left on 8750).
        return r.ok && child.pid !== undefined && listensOn(child.pid, '8750') ? true : undefined;
      }, 60_000, 100);
      const cfgPath = join(home, '.config', 'stowage', 'config.json');
      await pollUntil('the CLI config', () => Promise.resolve(existsSync(cfgPath) ? true : undefined), 10_000);
      expect(statSync(cfgPath).mode & 0o777).toBe(0o600);
      const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as { url: string; token: string };
      expect(cfg.url).toBe('http://127.0.0.1:8750');
      expect(out).toContain(cfg.token);
      expect(existsSync(join(cwd, '.stowage', 'stowage.db'))).toBe(true);
      const backends = await (await fetch('http://127.0.0.1:8750/v1/backends', { headers: { authorization: `Bearer ${cfg.token}` } })).json() as { items: { name: string; driver: string }[] };
      expect(backends.items.map((b) => b.name)).toEqual(['local']);
      expect(backends.items[0]?.driver).toContain(join(cwd, '.stowage'));
    } finally {
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
      await exited;
      rmSync(cwd, { recursive: true, force: true });
      rmSync(home, { recursive: true, force: true });
    }
  });
});
