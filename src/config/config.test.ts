import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'stowage-config-')); });
afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

function file(content: unknown): string {
  const path = join(dir, 'config.json');
  writeFileSync(path, JSON.stringify(content), { mode: 0o600 });
  return path;
}

describe('loadConfig', () => {
  it('gives the documented defaults with no file and no environment', () => {
    const c = loadConfig(undefined, { HOME: dir });
    expect(c).toMatchObject({ host: '127.0.0.1', port: 8750, probeIntervalMs: 30000, reconcileIntervalMs: 30000, operationLeaseMs: 10000, logLevel: 'info' });
    expect(c.dataDir).toBe(join(process.cwd(), '.stowage'));
    expect(c.databaseUrl).toBe(`sqlite://${join(process.cwd(), '.stowage', 'stowage.db')}`);
    expect(c.secretKeyFile).toBe(join(process.cwd(), '.stowage', 'secret.key'));
    expect(c.cliConfigPath).toBe(join(dir, '.config', 'stowage', 'config.json'));
  });

  it('takes defaults, then the file, then STOWAGE_* variables, then explicit overrides', () => {
    const path = file({ port: 9001, host: '127.0.0.2', probeIntervalMs: 1234, logLevel: 'warn' });
    const fromFile = loadConfig(path, {});
    expect(fromFile).toMatchObject({ port: 9001, host: '127.0.0.2', probeIntervalMs: 1234, logLevel: 'warn', reconcileIntervalMs: 30000 });

    const env = { STOWAGE_PORT: '9002', STOWAGE_PROBE_INTERVAL_MS: '4321' };
    const fromEnv = loadConfig(path, env);
    expect(fromEnv).toMatchObject({ port: 9002, probeIntervalMs: 4321, host: '127.0.0.2', logLevel: 'warn' });

    expect(loadConfig(path, env, { port: 9003 })).toMatchObject({ port: 9003, probeIntervalMs: 4321, host: '127.0.0.2' });
    // An empty variable does not override the file.
    expect(loadConfig(path, { STOWAGE_PORT: '' }).port).toBe(9001);
  });

  it('derives the store, key and data paths from dataDir unless they are set', () => {
    const c = loadConfig(file({ dataDir: join(dir, 'd') }), {});
    expect(c.databaseUrl).toBe(`sqlite://${join(dir, 'd', 'stowage.db')}`);
    expect(c.secretKeyFile).toBe(join(dir, 'd', 'secret.key'));
    const set = loadConfig(file({ dataDir: join(dir, 'd'), secretKeyFile: join(dir, 'k') }), { STOWAGE_DATABASE_URL: 'postgres://u@127.0.0.1:1/x' });
    expect(set.secretKeyFile).toBe(join(dir, 'k'));
    expect(set.databaseUrl).toBe('postgres://u@127.0.0.1:1/x');
  });

  it('rejects a bad value, naming the setting, with VALIDATION_FAILED', () => {
    expect(() => loadConfig(undefined, { STOWAGE_PORT: 'eighty' })).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED', message: expect.stringContaining('port') as string }) as Error);
    expect(() => loadConfig(file({ port: 70000 }), {})).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED', message: expect.stringContaining('port') as string }) as Error);
    expect(() => loadConfig(file({ logLevel: 'loud' }), {})).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }) as Error);
  });

  it('rejects a missing or unparsable file with VALIDATION_FAILED naming it', () => {
    const missing = join(dir, 'nope.json');
    expect(() => loadConfig(missing, {})).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED', message: expect.stringContaining(missing) as string }) as Error);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ not json', { mode: 0o600 });
    expect(() => loadConfig(bad, {})).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED', message: expect.stringContaining(bad) as string }) as Error);
  });
});
