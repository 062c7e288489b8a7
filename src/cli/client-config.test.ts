import { chmodSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_API_URL, cliConfigPath, resolveClientConfig, writeClientConfigFile } from './client-config.js';
import { CliError } from './errors.js';

describe('resolveClientConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), `stowage-cli-config-${process.pid}-`));
  const file = join(dir, 'cli.json');
  writeFileSync(file, JSON.stringify({ url: 'http://file:1/', token: 'file-token' }));
  afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

  it('prefers flags, then environment, then the config file, field by field', () => {
    const env = { STOWAGE_CLI_CONFIG: file };
    expect(resolveClientConfig({}, env)).toMatchObject({ url: 'http://file:1', token: 'file-token', configPath: file });
    expect(resolveClientConfig({}, { ...env, STOWAGE_URL: 'http://env:2' })).toMatchObject({ url: 'http://env:2', token: 'file-token' });
    expect(resolveClientConfig({ token: 'flag' }, { ...env, STOWAGE_TOKEN: 'env' })).toMatchObject({ url: 'http://file:1', token: 'flag' });
    expect(resolveClientConfig({ api: 'https://flag:3' }, { ...env, STOWAGE_URL: 'http://env:2' }).url).toBe('https://flag:3');
  });

  it('finds the file under XDG_CONFIG_HOME, else ~/.config', () => {
    expect(cliConfigPath({ XDG_CONFIG_HOME: '/x' })).toBe('/x/stowage/config.json');
    expect(cliConfigPath({ HOME: '/home/u' })).toBe('/home/u/.config/stowage/config.json');
    const xdg = join(dir, 'xdg');
    mkdirSync(join(xdg, 'stowage'), { recursive: true });
    writeFileSync(join(xdg, 'stowage', 'config.json'), JSON.stringify({ url: 'http://xdg:4', token: 't' }));
    expect(resolveClientConfig({}, { XDG_CONFIG_HOME: xdg })).toMatchObject({ url: 'http://xdg:4', token: 't' });
  });

  it('falls back to the default URL and no token when nothing is configured', () => {
    expect(resolveClientConfig({}, { STOWAGE_CLI_CONFIG: join(dir, 'missing.json') })).toMatchObject({ url: DEFAULT_API_URL, token: undefined });
  });

  it('rejects a broken config file and non-http URLs as usage errors', () => {
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{not json');
    const err = (() => { try { resolveClientConfig({}, { STOWAGE_CLI_CONFIG: broken }); return null; } catch (e) { return e; } })();
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(2);
    expect(() => resolveClientConfig({ api: 'ftp://x' }, { STOWAGE_CLI_CONFIG: file })).toThrow(/http/);
  });
});

describe('writeClientConfigFile', () => {
  const dir = mkdtempSync(join(tmpdir(), `stowage-cli-write-${process.pid}-`));
  afterAll(() => { rmSync(dir, { recursive: true, force: true }); });
  const mode = (p: string): number => statSync(p).mode & 0o777;

  it('creates missing directories 0700 and the file 0600', () => {
    const file = join(dir, 'new', 'stowage', 'config.json');
    writeClientConfigFile(file, { url: 'http://a:1', token: 't' });
    expect(mode(file)).toBe(0o600);
    expect(mode(join(dir, 'new', 'stowage'))).toBe(0o700);
    expect(mode(join(dir, 'new'))).toBe(0o700);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ url: 'http://a:1', token: 't' });
  });

  it('replaces a looser existing file with a 0600 one, leaving no temp file; tightens the directory only when it is the CLI\'s own', () => {
    const shared = join(dir, 'shared');
    mkdirSync(shared, { mode: 0o755 });
    chmodSync(shared, 0o755);
    const file = join(shared, 'cli.json');
    writeFileSync(file, '{}', { mode: 0o644 });
    chmodSync(file, 0o644);
    writeClientConfigFile(file, { url: 'http://b:2', token: 'u' });
    expect(mode(file)).toBe(0o600);
    expect(mode(shared)).toBe(0o755);
    expect(readdirSync(shared)).toEqual(['cli.json']);
    writeClientConfigFile(file, { url: 'http://b:2', token: 'v' }, { privateDir: true });
    expect(mode(shared)).toBe(0o700);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ url: 'http://b:2', token: 'v' });
  });
});
