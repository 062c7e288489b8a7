import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { SpawnCommandRunner } from '../../src/system/command-runner.js';
import { generateIdentity, isFingerprint } from '../../src/system/tls-identity.js';
import { freeTcpPort } from '../lab/ports.js';
import { CliSession, ensureCliBuilt } from './cli-harness.js';

/**
 * The CLI pins the API's certificate: the pin the first start writes, or `stowage login`; a server
 * showing any other certificate gets a handshake and nothing else (no request, no token).
 */
describe('CLI certificate pinning (tls: on, loopback)', () => {
  let dir: string;
  let server: RunningServer;
  let serverConfig: string;
  let rogue: Server;
  let rogueUrl: string;
  let rogueRequests = 0;
  let file: { url: string; token: string; apiFingerprint: string; apiCertPem: string };

  /** Runs the built CLI with only `config` as its configuration. */
  async function cli(args: readonly string[], config: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const s = Object.create(CliSession.prototype) as CliSession;
    Object.assign(s, { dir, configPath: config });
    return s.run(args);
  }

  beforeAll(async () => {
    await ensureCliBuilt();
    dir = mkdtempSync(join(tmpdir(), `stowage-tls-${process.pid}-`));
    serverConfig = join(dir, 'server-cli.json');
    const port = await freeTcpPort('127.0.0.1');
    server = await startServer(loadConfig(undefined, {}, { dataDir: join(dir, 'data'), port, tls: 'on', cliConfigPath: serverConfig, logLevel: 'silent', probeIntervalMs: 60_000 }));
    file = JSON.parse(readFileSync(serverConfig, 'utf8')) as typeof file;
    const other = await generateIdentity(new SpawnCommandRunner(), 'impostor', ['127.0.0.1']);
    rogue = createServer({ key: other.keyPem, cert: other.certPem }, (_req, res) => { rogueRequests++; res.end('{}'); });
    await new Promise<void>((res) => { rogue.listen(0, '127.0.0.1', res); });
    const addr = rogue.address();
    rogueUrl = `https://127.0.0.1:${String(typeof addr === 'object' && addr ? addr.port : 0)}`;
  });
  afterAll(async () => {
    await new Promise<void>((res) => { rogue.close(() => { res(); }); });
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the first start writes the URL and the pin (0600), and the CLI works with it', async () => {
    expect(server.url).toMatch(/^https:/);
    expect(file.url).toBe(server.url);
    expect(isFingerprint(file.apiFingerprint)).toBe(true);
    expect(statSync(serverConfig).mode & 0o777).toBe(0o600);
    const r = await cli(['backend', 'list', '-o', 'json'], serverConfig);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('refuses a server with another certificate, sending it nothing', async () => {
    const forged = join(dir, 'forged.json');
    writeFileSync(forged, JSON.stringify({ url: rogueUrl, token: file.token }), { mode: 0o600 });
    // No pin for that address: refused, showing the fingerprint it saw.
    const unpinned = await cli(['backend', 'list'], forged);
    expect(unpinned.code).toBe(1);
    expect(unpinned.stderr).toMatch(/TLS_UNPINNED: .*has not pinned; nothing was sent/);
    expect(unpinned.stderr).toContain('stowage login');
    // The real server's pin, presented by an impostor: mismatch.
    writeFileSync(forged, JSON.stringify({ ...file, url: rogueUrl }), { mode: 0o600 });
    const mismatch = await cli(['backend', 'list'], forged);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toMatch(/TLS_PIN_MISMATCH: the API at https:\/\/127\.0\.0\.1:\d+ shows certificate sha256:[0-9a-f]{64}, not the pinned/);
    expect(mismatch.stderr).toContain('stowage login --api');
    expect(`${unpinned.stderr}${mismatch.stderr}`).not.toContain(file.token);
    expect(rogueRequests).toBe(0);
  });

  it('login pins only the fingerprint it was given', async () => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, file.token, { mode: 0o600 });
    const fresh = join(dir, 'login.json');
    const wrong = await cli(['--api', server.url, '--fingerprint', `sha256:${'0'.repeat(64)}`, 'login', '--token-file', tokenFile], fresh);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('TLS_PIN_MISMATCH');
    expect(existsSync(fresh)).toBe(false);
    const none = await cli(['--api', server.url, 'login', '--token-file', tokenFile], fresh);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(file.apiFingerprint);
    expect(existsSync(fresh)).toBe(false);
    const right = await cli(['--api', server.url, '--fingerprint', file.apiFingerprint, 'login', '--token-file', tokenFile], fresh);
    expect(right.code).toBe(0);
    expect(statSync(fresh).mode & 0o777).toBe(0o600);
    expect((await cli(['host', 'list'], fresh)).code).toBe(0);
  });
});
