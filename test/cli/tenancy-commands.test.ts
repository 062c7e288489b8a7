import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QuotaReport } from '../../src/core/schemas/quota-schema.js';
import type { Tenant, Token, User, Whoami } from '../../src/core/schemas/tenant-schema.js';
import { parseSize } from '../../src/core/sizes.js';
import { CliSession, closedPort, type CliResult } from './cli-harness.js';

/** Characters a terminal would act on: C0 except \n and \t, DEL, C1, bidi overrides and isolates. */
const ACTIVE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
/** Clears the screen, sets red through the C1 CSI, and reverses the rest of the line. */
const HOSTILE = 'co\u001b[2J\u009b31m\u202eevil\u007f';

/** The header cells and first words of the rows of a table. */
function table(stdout: string): { head: string[]; names: string[]; rows: string[] } {
  const [head = '', ...rows] = stdout.trimEnd().split('\n');
  return { head: head.split(/\s{2,}/), names: rows.map((r) => r.split(/\s+/)[0] ?? ''), rows };
}

/**
 * `stowage tenant|user|token|whoami|login|quota`, run as the built CLI against a real server: tables
 * and `-o json`, secrets kept off stdout and out of lists, `login` checking the token before it
 * saves anything, and control characters refused in names and escaped in descriptions.
 */
describe('stowage tenancy commands', () => {
  let s: CliSession;
  let n = 0;

  /** Runs with `token` (STOWAGE_TOKEN, not argv) instead of the admin's config-file token. */
  const runAs = (token: string, args: readonly string[]): Promise<CliResult> => s.run(args, { STOWAGE_TOKEN: token });
  const ok = async (args: readonly string[], extraEnv: Readonly<Record<string, string>> = {}): Promise<string> => {
    const r = await s.run(args, extraEnv);
    expect(r.code, `stowage ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const json = async <T>(args: readonly string[], extraEnv: Readonly<Record<string, string>> = {}): Promise<T> => JSON.parse(await ok([...args, '-o', 'json'], extraEnv)) as T;
  /** A new token of `user`, written (0600) to a fresh file; returns its name, the file and the secret read from it. */
  const newToken = async (user: string): Promise<{ name: string; file: string; secret: string }> => {
    const name = `t${String(++n)}`;
    const file = join(s.dir, `${name}.token`);
    await ok(['token', 'create', name, '--user', user, '--out', file]);
    return { name, file, secret: readFileSync(file, 'utf8').trim() };
  };

  beforeAll(async () => { s = await CliSession.start(); }, 120_000);
  afterAll(async () => { await s.stop(); });

  it('tenant create, list, show, update and delete, as tables and JSON', async () => {
    expect(await ok(['tenant', 'create', 'acme', '--description', 'Acme Corp'])).toMatch(/^Name:\s+acme$/m);
    const created = await json<Tenant>(['tenant', 'create', 'globex']);
    expect(created).toMatchObject({ name: 'globex', description: '', usage: { users: 0, volumes: 0, snapshots: 0, grants: 0, attachments: 0 } });
    const dup = await s.run(['tenant', 'create', 'acme']);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/^NAME_TAKEN: /);

    const list = table(await ok(['tenant', 'list']));
    expect(list.head).toEqual(['NAME', 'USERS', 'VOLUMES', 'SNAPSHOTS', 'DESCRIPTION']);
    expect(list.names).toEqual(['acme', 'default', 'globex']);
    expect(list.rows[0]).toMatch(/^acme\s+0\s+0\s+0\s+Acme Corp$/);
    expect((await json<Tenant[]>(['tenant', 'list'])).map((t) => t.name)).toEqual(['acme', 'default', 'globex']);

    const shown = await ok(['tenant', 'show', 'acme']);
    expect(shown).toMatch(/^Description:\s+Acme Corp$/m);
    expect(shown).toMatch(/^Owns:\s+0 users, 0 volumes, 0 snapshots, 0 grants, 0 attachments$/m);
    expect(await json<Tenant>(['tenant', 'show', created.id])).toMatchObject({ name: 'globex' });
    expect(await json<Tenant>(['tenant', 'update', 'globex', '--description', 'Globex Inc'])).toMatchObject({ name: 'globex', description: 'Globex Inc' });
    expect(await ok(['tenant', 'update', 'globex', '--description', 'Globex'])).toMatch(/^Description:\s+Globex$/m);
    const nothing = await s.run(['tenant', 'update', 'globex']);
    expect([nothing.code, nothing.stderr.split('\n')[0]]).toEqual([2, 'VALIDATION_FAILED: nothing to change']);
    const missing = await s.run(['tenant', 'show', 'nowhere']);
    expect([missing.code, /^TENANT_NOT_FOUND: /.test(missing.stderr)]).toEqual([1, true]);

    const unconfirmed = await s.run(['tenant', 'delete', 'globex']);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toContain('--yes');
    expect(await ok(['tenant', 'delete', 'globex', '--yes'])).toBe('tenant globex deleted\n');
    expect((await json<Tenant[]>(['tenant', 'list'])).map((t) => t.name)).toEqual(['acme', 'default']);
  });

  it('user create, list, show, update and delete, as tables and JSON', async () => {
    const alice = await json<User>(['user', 'create', 'alice', '--tenant', 'acme', '--role', 'member']);
    expect(alice).toMatchObject({ name: 'alice', tenant: 'acme', role: 'member', kind: 'user', tokens: 0 });
    const ci = await ok(['user', 'create', 'ci', '--tenant', 'acme', '--role', 'member', '--service', '--description', 'the build pipeline']);
    expect(ci).toMatch(/^Kind:\s+service account$/m);
    expect(ci).toMatch(/^Tenant:\s+acme$/m);
    expect(await ok(['user', 'create', 'ops2', '--role', 'admin'])).toMatch(/^Tenant:\s+none \(system admin\)$/m);
    await ok(['user', 'create', 'rita', '--tenant', 'acme', '--role', 'reader']);
    const adminWithTenant = await s.run(['user', 'create', 'bad', '--role', 'admin', '--tenant', 'acme']);
    expect([adminWithTenant.code, /^VALIDATION_FAILED: /.test(adminWithTenant.stderr)]).toEqual([1, true]);
    const badRole = await s.run(['user', 'create', 'bad', '--role', 'root', '--tenant', 'acme']);
    expect(badRole.code).not.toBe(0);
    expect(badRole.stderr).toMatch(/admin, member, reader/);

    const list = table(await ok(['user', 'list']));
    expect(list.head).toEqual(['NAME', 'TENANT', 'ROLE', 'KIND', 'TOKENS', 'DESCRIPTION']);
    expect(list.names).toEqual(['admin', 'alice', 'ci', 'ops2', 'rita']);
    expect(list.rows.find((r) => r.startsWith('admin '))).toMatch(/^admin\s+\(system\)\s+admin\s+user\s+1\s+created on the first start$/);
    expect(list.rows.find((r) => r.startsWith('ci '))).toMatch(/^ci\s+acme\s+member\s+service\s+0\s+the build pipeline$/);
    expect((await json<User[]>(['user', 'list', '--tenant', 'acme'])).map((u) => u.name)).toEqual(['alice', 'ci', 'rita']);
    expect(await ok(['user', 'show', 'alice'])).toMatch(/^Role:\s+member$/m);
    expect(await json<User>(['user', 'show', alice.id])).toMatchObject({ name: 'alice' });
    expect(await json<User>(['user', 'update', 'rita', '--role', 'member', '--description', 'promoted'])).toMatchObject({ role: 'member', description: 'promoted' });
    expect(await ok(['user', 'update', 'rita', '--role', 'reader'])).toMatch(/^Role:\s+reader$/m);
    const acrossKinds = await s.run(['user', 'update', 'rita', '--role', 'admin']);
    expect([acrossKinds.code, /^VALIDATION_FAILED: /.test(acrossKinds.stderr)]).toEqual([1, true]);
    const self = await s.run(['user', 'delete', 'admin', '--yes']);
    expect([self.code, /^FORBIDDEN: you cannot delete yourself/.test(self.stderr)]).toEqual([1, true]);
    expect(await ok(['user', 'delete', 'ops2', '--yes'])).toBe('user ops2 deleted; its tokens no longer work\n');
    expect((await s.run(['user', 'show', 'ops2'])).stderr).toMatch(/^USER_NOT_FOUND: /);
    // A tenant with users is not deleted.
    const full = await s.run(['tenant', 'delete', 'acme', '--yes']);
    expect([full.code, /^TENANT_NOT_EMPTY: tenant acme still owns 3 users/.test(full.stderr)]).toEqual([1, true]);
  });

  it('token create --out writes the secret 0600 and keeps it off stdout; list never shows it; revoke stops it', async () => {
    const file = join(s.dir, 'alice.token');
    const r = await s.run(['token', 'create', 'laptop', '--user', 'alice', '--out', file, '--expires', '90d']);
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const secret = readFileSync(file, 'utf8').trim();
    expect(secret).toMatch(/^stw_/);
    expect(r.stdout).not.toContain(secret);
    expect(r.stdout).toMatch(/^token laptop \(tok-\w+\) of alice, role member, expires \d{4}-\d\d-\d\d \d\d:\d\d:\d\d: secret written to .*alice\.token \(0600\)$/m);

    const jsonFile = join(s.dir, 'ci.token');
    const out = await ok(['token', 'create', 'deploy', '--user', 'ci', '--scope', 'reader', '--out', jsonFile, '-o', 'json']);
    const ciSecret = readFileSync(jsonFile, 'utf8').trim();
    expect(out).not.toContain(ciSecret);
    expect(JSON.parse(out)).toMatchObject({ name: 'deploy', user: 'ci', role: 'reader', scope: 'reader', state: 'active' });
    // Never over an existing file, and then no token is made (there would be nothing to use it with).
    const clash = await s.run(['token', 'create', 'other', '--user', 'alice', '--out', file]);
    expect(clash.code).toBe(2);
    expect(clash.stderr).toMatch(/^VALIDATION_FAILED: .*alice\.token exists; no token was created/);
    expect(readFileSync(file, 'utf8').trim()).toBe(secret);
    expect((await json<Token[]>(['token', 'list', '--user', 'alice'])).map((x) => x.name)).toEqual(['laptop']);
    // A refused create leaves no file behind.
    const refusedFile = join(s.dir, 'refused.token');
    const taken = await s.run(['token', 'create', 'laptop', '--user', 'alice', '--out', refusedFile]);
    expect([taken.code, /^NAME_TAKEN: /.test(taken.stderr)]).toEqual([1, true]);
    expect(existsSync(refusedFile)).toBe(false);
    await ok(['token', 'create', 'other', '--user', 'alice', '--out', join(s.dir, 'other.token')]);

    await ok(['whoami'], { STOWAGE_TOKEN: secret });
    const list = await ok(['token', 'list', '--user', 'alice']);
    const t = table(list);
    expect(t.head).toEqual(['NAME', 'ID', 'ROLE', 'STATE', 'EXPIRES', 'LAST USED']);
    expect(t.names).toEqual(['laptop', 'other']);
    expect(t.rows[0]).toMatch(/^laptop\s+tok-\w+\s+member\s+active\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+\d{4}-/);
    const mine = await runAs(secret, ['token', 'list', '-o', 'json']);
    expect(mine.code, mine.stderr).toBe(0);
    for (const text of [list, mine.stdout]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(ciSecret);
    }
    const items = JSON.parse(mine.stdout) as Token[];
    expect(items.find((x) => x.name === 'laptop')).toMatchObject({ user: 'alice', state: 'active', lastUsedAt: expect.any(String) as unknown });
    expect(Object.keys(items[0] ?? {})).not.toContain('secret');

    // Revoked by its user, by name: refused from then on.
    const revoke = await runAs(secret, ['token', 'revoke', 'other']);
    expect([revoke.code, revoke.stdout]).toEqual([0, 'token other revoked\n']);
    expect(await ok(['token', 'revoke', 'laptop', '--user', 'alice'])).toBe('token laptop revoked\n');
    const after = await runAs(secret, ['whoami']);
    expect(after.code).toBe(1);
    expect(after.stderr).toMatch(/^UNAUTHORIZED: /);
    expect(after.stderr).not.toContain(secret);
    expect((await json<Token[]>(['token', 'list', '--user', 'alice'])).map((x) => x.state)).toEqual(['revoked', 'revoked']);
    const unknown = await s.run(['token', 'revoke', 'nothing-here']);
    expect([unknown.code, /^TOKEN_NOT_FOUND: /.test(unknown.stderr)]).toEqual([1, true]);
    // Escalation from the CLI: a reader's token mints nothing wider.
    const rita = await newToken('rita');
    const wider = await runAs(rita.secret, ['token', 'create', 'wide', '--scope', 'member', '--out', join(s.dir, 'never.token')]);
    expect([wider.code, /^FORBIDDEN: /.test(wider.stderr)]).toEqual([1, true]);
    expect(existsSync(join(s.dir, 'never.token'))).toBe(false);
  });

  it('whoami shows the configured token\'s user, tenant and role', async () => {
    const admin = await ok(['whoami']);
    expect(admin).toMatch(/^User:\s+admin$/m);
    expect(admin).toMatch(/^Tenant:\s+default \(system admin: acts here, administers every tenant\)$/m);
    expect(admin).toMatch(/^Role:\s+admin$/m);
    expect(admin).toMatch(/^Token:\s+bootstrap \(tok-\w+\)$/m);
    const ci = await newToken('ci');
    const w = await json<Whoami>(['whoami'], { STOWAGE_TOKEN: ci.secret });
    expect(w).toMatchObject({ user: 'ci', kind: 'service', tenant: 'acme', role: 'member', token: { expiresAt: null } });
    expect(await ok(['whoami'], { STOWAGE_TOKEN: ci.secret })).toMatch(/^User:\s+ci \(service account\)$/m);
  });

  it('login checks the token with the API before it saves anything, then writes the config 0600 in a 0700 directory', async () => {
    const alice = await newToken('alice');
    const home = join(s.dir, 'home-alice');
    mkdirSync(join(home, '.config', 'stowage'), { recursive: true, mode: 0o755 });
    chmodSync(join(home, '.config', 'stowage'), 0o755);
    const configFile = join(home, '.config', 'stowage', 'config.json');
    // The default config path (no STOWAGE_CLI_CONFIG), under this HOME.
    const env = { HOME: home, STOWAGE_CLI_CONFIG: '' };
    const previous = `${JSON.stringify({ url: 'http://127.0.0.1:1', token: 'previous' })}\n`;
    writeFileSync(configFile, previous, { mode: 0o644 });

    const bad = join(s.dir, 'bad.token');
    writeFileSync(bad, 'stw_not-a-real-token\n', { mode: 0o600 });
    const refused = await s.run(['--api', s.server.url, 'login', '--token-file', bad], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^UNAUTHORIZED: the API at http:\/\/127\.0\.0\.1:\d+ refused this token .*nothing was saved$/m);
    expect(readFileSync(configFile, 'utf8')).toBe(previous);

    const down = await s.run(['--api', `http://127.0.0.1:${String(await closedPort())}`, 'login', '--token-file', alice.file], env);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/cannot reach the Stowage API at .*nothing was saved/);
    expect(readFileSync(configFile, 'utf8')).toBe(previous);

    const good = await s.run(['--api', s.server.url, 'login', '--token-file', alice.file], env);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout).toBe(`logged in as alice (tenant acme, role member); saved ${s.server.url} in ${configFile}\n`);
    expect(good.stderr).toMatch(/plain HTTP/);
    for (const text of [refused.stdout, refused.stderr, down.stdout, down.stderr, good.stdout, good.stderr]) expect(text).not.toContain(alice.secret);
    expect(statSync(configFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, '.config', 'stowage')).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(configFile, 'utf8'))).toEqual({ url: s.server.url, token: alice.secret });
    expect(await json<Whoami>(['whoami'], env)).toMatchObject({ user: 'alice', tenant: 'acme' });

    // A fresh home: the directories are created 0700.
    const fresh = join(s.dir, 'home-fresh');
    const first = await s.run(['--api', s.server.url, 'login', '--token-file', alice.file], { HOME: fresh, STOWAGE_CLI_CONFIG: '' });
    expect(first.code, first.stderr).toBe(0);
    expect(statSync(join(fresh, '.config', 'stowage')).mode & 0o777).toBe(0o700);
    expect(statSync(join(fresh, '.config', 'stowage', 'config.json')).mode & 0o777).toBe(0o600);

    // A revoked token logs in no more, and leaves the saved one alone.
    await ok(['token', 'revoke', alice.name, '--user', 'alice']);
    const revoked = await s.run(['--api', s.server.url, 'login', '--token-file', alice.file], { HOME: fresh, STOWAGE_CLI_CONFIG: '' });
    expect(revoked.code).toBe(1);
    expect(revoked.stderr).toMatch(/^UNAUTHORIZED: /);
    expect(existsSync(join(fresh, '.config', 'stowage', 'config.json'))).toBe(true);
  });

  it('quota show and set, as tables and JSON', async () => {
    const set = await json<QuotaReport>(['quota', 'set', '--tenant', 'acme', '--volumes', '10', '--size', '1G', '--snapshots', '20']);
    expect(set.tenant).toBe('acme');
    expect(set.lines.find((l) => l.quota === 'volumes' && l.scope === 'tenant')).toMatchObject({ used: 0, limit: 10, free: 10 });
    expect(set.lines.find((l) => l.quota === 'bytes' && l.scope === 'tenant')).toMatchObject({ limit: parseSize('1G') });
    const shown = await ok(['quota', 'show', '--tenant', 'acme']);
    const [title, ...rest] = shown.trimEnd().split('\n');
    expect(title).toBe('tenant acme');
    const t = table(rest.join('\n'));
    expect(t.head).toEqual(['QUOTA', 'SCOPE', 'USED', 'LIMIT', 'FREE']);
    expect(t.rows).toEqual(expect.arrayContaining([expect.stringMatching(/^volumes\s+tenant\s+0\s+10\s+10$/), expect.stringMatching(/^snapshots\s+tenant\s+0\s+20\s+20$/)]));
    // A member sees its own tenant's; an admin's --tenant is refused for it.
    const ci = await newToken('ci');
    expect((await json<QuotaReport>(['quota', 'show'], { STOWAGE_TOKEN: ci.secret })).tenant).toBe('acme');
    const other = await runAs(ci.secret, ['quota', 'set', '--tenant', 'acme', '--volumes', '1000']);
    expect([other.code, /^FORBIDDEN: /.test(other.stderr)]).toEqual([1, true]);
    const cleared = await json<QuotaReport>(['quota', 'set', '--tenant', 'acme', '--size', 'none']);
    expect(cleared.lines.find((l) => l.quota === 'bytes' && l.scope === 'tenant')).toMatchObject({ limit: null });
    expect(cleared.lines.find((l) => l.quota === 'volumes' && l.scope === 'tenant')).toMatchObject({ limit: 10 });
    for (const args of [['quota', 'set', '--tenant', 'acme'], ['quota', 'set', '--tenant', 'acme', '--volumes', '-1'], ['quota', 'set', '--tenant', 'acme', '--volumes', '1.5']]) {
      const r = await s.run(args);
      expect([r.code, /^VALIDATION_FAILED: /.test(r.stderr)], `${args.join(' ')}: ${r.stderr}`).toEqual([2, true]);
    }
    expect((await json<QuotaReport>(['quota', 'show', '--tenant', 'acme'])).lines.find((l) => l.quota === 'volumes' && l.scope === 'tenant')).toMatchObject({ limit: 10 });
  });

  it('refuses control characters in names and escapes them in descriptions', async () => {
    for (const args of [['tenant', 'create', 'ev\u001b[2Jil'], ['user', 'create', 'ev\u001b]0;x\u0007il', '--role', 'admin'], ['token', 'create', 'ev\u009bil', '--out', join(s.dir, 'ctl.token')]]) {
      const r = await s.run(args);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^VALIDATION_FAILED: /);
      expect(r.stderr).not.toMatch(ACTIVE);
    }
    expect(existsSync(join(s.dir, 'ctl.token'))).toBe(false);
    expect((await json<Tenant[]>(['tenant', 'list'])).map((t) => t.name)).toEqual(['acme', 'default']);

    await ok(['tenant', 'create', 'hostile', '--description', HOSTILE]);
    await ok(['user', 'create', 'mallory', '--tenant', 'hostile', '--role', 'reader', '--description', HOSTILE]);
    for (const args of [['tenant', 'show', 'hostile'], ['tenant', 'list'], ['user', 'show', 'mallory'], ['user', 'list'], ['tenant', 'update', 'hostile', '--description', HOSTILE], ['user', 'update', 'mallory', '--description', HOSTILE]]) {
      const r = await s.run(args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout, args.join(' ')).not.toMatch(ACTIVE);
      expect(r.stdout).toContain('co\\u001b[2J\\u009b31m\\u202eevil\\u007f');
    }
    const j = await ok(['tenant', 'show', 'hostile', '-o', 'json']);
    expect(j).not.toMatch(ACTIVE);
    expect((JSON.parse(j) as Tenant).description).toBe(HOSTILE);
    expect((await json<User>(['user', 'show', 'mallory'])).description).toBe(HOSTILE);
  });
});
