import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { parseEnrollmentToken, formatEnrollmentToken } from '../../src/core/enrollment-token.js';
import { StowageError } from '../../src/core/errors.js';
import type { NodeEnrollment } from '../../src/core/schemas/node-schema.js';
import { startNodeServer } from '../../src/node/node-server.js';
import { enrollNode } from '../../src/node/run-node.js';
import { ControlIdentities } from '../../src/nodes/control-identities.js';
import { NodeClient } from '../../src/nodes/node-client.js';
import { NodeRepository } from '../../src/store/node-repository.js';
import { openStore, type Store } from '../../src/store/store.js';
import { SpawnCommandRunner } from '../../src/system/command-runner.js';
import { SecretBox } from '../../src/system/secret-box.js';
import { generateIdentity, type TlsIdentity } from '../../src/system/tls-identity.js';
import { pinnedFetch } from '../../src/system/pinned-fetch.js';
import { DRIVER_FACTORIES } from '../../src/drivers/driver-factories.js';
import { closedPort, ensureCliBuilt, REPO_ROOT } from '../cli/cli-harness.js';
import { clientFor, makeTempDir, pollUntil, removeTempDir, spawnServer, startInProcessServer, type InProcessServer, type SpawnedServer } from '../helpers/server.js';

const CLI = join(REPO_ROOT, 'bin', 'stowage.js');
const runner = new SpawnCommandRunner();

/** A `stowage node run` child process this test started (stopped by its PID only). */
class NodeProcess {
  out = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { this.out += d; });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { this.out += d; });
    this.exited = new Promise((resolve) => { child.once('exit', (code, signal) => { resolve({ code, signal }); }); });
  }

  async running(): Promise<void> {
    await pollUntil('stowage node running', async () => {
      if (this.child.exitCode !== null) throw new Error(`stowage node run exited ${String(this.child.exitCode)}:\n${this.out}`);
      return this.out.includes('stowage node running') ? true : undefined;
    }, 60_000);
  }

  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.pid !== undefined) process.kill(this.child.pid, 'SIGTERM');
    return this.exited;
  }
}

function runNode(args: readonly string[], env: Readonly<Record<string, string>> = {}): NodeProcess {
  const child = spawn(process.execPath, [CLI, 'node', 'run', ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir(), ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new NodeProcess(child);
}

/** The control plane's node-client identity and the node's pinned certificate, read from the serve's own store. */
async function controlPlaneView(s: SpawnedServer, node: string): Promise<{ identity: TlsIdentity; nodeCertPem: string; address: string; store: Store }> {
  const config = loadConfig(undefined, {}, { dataDir: s.dataDir });
  const store = await openStore(config.databaseUrl);
  const repo = new NodeRepository();
  const identity = await new ControlIdentities(store, repo, SecretBox.fromKeyFile(config.secretKeyFile), runner).get('node-client');
  const row = await repo.findByName(store.db, node);
  if (!row?.cert_pem) throw new Error(`node ${node} is not enrolled`);
  return { identity, nodeCertPem: row.cert_pem, address: row.address, store };
}

describe('stowage node run against a real stowage serve (child processes, loopback)', () => {
  let dir: string;
  let serve: SpawnedServer;
  let node: NodeProcess | undefined;
  let port: number;
  let enrollment: NodeEnrollment;
  let viewOrNone: Awaited<ReturnType<typeof controlPlaneView>> | undefined;
  const cp = (): Awaited<ReturnType<typeof controlPlaneView>> => {
    if (!viewOrNone) throw new Error('beforeAll did not finish');
    return viewOrNone;
  };

  beforeAll(async () => {
    await ensureCliBuilt();
    dir = makeTempDir('stowage-node-run-');
    mkdirSync(join(dir, 'cp'), { mode: 0o700 });
    serve = await spawnServer({ dataDir: join(dir, 'cp') });
    port = await closedPort();
    const created = await clientFor(serve).ok('POST', '/v1/nodes', 201, { body: { name: 'sn1', address: `127.0.0.1:${String(port)}` } });
    enrollment = created as NodeEnrollment;
    // The token goes through a 0600 file, never argv (what the help text recommends).
    writeFileSync(join(dir, 'sn1.token'), `${enrollment.enrollToken}\n`, { mode: 0o600 });
    node = runNode(['--name', 'sn1', '--listen', `127.0.0.1:${String(port)}`, '--api', serve.url, '--state-dir', join(dir, 'sn1'), '--enroll-file', join(dir, 'sn1.token')]);
    await node.running();
    viewOrNone = await controlPlaneView(serve, 'sn1');
  }, 180_000);

  afterAll(async () => {
    await node?.stop();
    await viewOrNone?.store.close();
    await serve.stop();
    removeTempDir(dir);
  });

  it('enrolls: the node is syncing with its key pinned, its state dir private, the token never in its output', async () => {
    const n = await clientFor(serve).ok<{ state: string; keyFingerprint: string | null }>('GET', '/v1/nodes/sn1', 200);
    expect(n.state).toBe('syncing');
    expect(n.keyFingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(statSync(join(dir, 'sn1')).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'sn1', 'identity', 'key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'sn1', 'control-plane.pem')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'sn1', 'control-plane.pem'), 'utf8')).toBe(cp().identity.certPem);
    expect(node?.out).not.toContain(parseEnrollmentToken(enrollment.enrollToken).secret);
  });

  it('answers a health call through NodeClient with the pinned identities', async () => {
    const client = new NodeClient({ name: 'sn1', address: cp().address, certPem: cp().nodeCertPem }, cp().identity);
    try {
      const h = await client.health(AbortSignal.timeout(30_000));
      // The serve's monitor may already have opened epoch 1 for its first sync: either is right here.
      expect(h.name).toBe('sn1');
      expect([0, 1]).toContain(h.epoch);
    } finally {
      client.close();
    }
  });

  it('refuses a reused enrollment token', async () => {
    const again = runNode(['--name', 'sn1', '--listen', '127.0.0.1:0', '--api', serve.url, '--state-dir', join(dir, 'again')], { STOWAGE_ENROLL_TOKEN: enrollment.enrollToken });
    const exit = await again.exited;
    expect(exit.code).not.toBe(0);
    expect(again.out).toContain('ENROLLMENT_INVALID');
    expect(again.out).not.toContain(parseEnrollmentToken(enrollment.enrollToken).secret);
  });

  it('the control plane refuses a node showing another key than the pinned one', async () => {
    const impostorPort = await closedPort();
    const impostor = await startNodeServer({
      name: 'sn1', listen: { host: '127.0.0.1', port: impostorPort }, identity: await generateIdentity(runner, 'impostor', ['127.0.0.1']),
      controlPlaneCertPem: cp().identity.certPem, dataDir: join(dir, 'impostor'), runner, factories: DRIVER_FACTORIES,
      logger: pino({ level: 'silent' }), version: 'test',
    });
    const client = new NodeClient({ name: 'sn1', address: `127.0.0.1:${String(impostorPort)}`, certPem: cp().nodeCertPem }, cp().identity);
    try {
      const err = await client.health(AbortSignal.timeout(30_000)).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(StowageError);
      expect((err as StowageError).code).toBe('NODE_UNREACHABLE');
      expect((err as StowageError).details).toMatchObject({ reason: 'auth_failed' });
    } finally {
      client.close();
      await impostor.close();
    }
  });

  it('the node refuses a client holding another key than its control plane\'s', async () => {
    const stranger = await generateIdentity(runner, 'stranger');
    const client = new NodeClient({ name: 'sn1', address: cp().address, certPem: cp().nodeCertPem }, stranger);
    try {
      const err = await client.health(AbortSignal.timeout(30_000)).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(StowageError);
      expect((err as StowageError).code).toBe('NODE_UNREACHABLE');
    } finally {
      client.close();
    }
  });

  it('stops cleanly on SIGTERM and serves again without a token from its saved state', async () => {
    expect((await node?.stop())?.code).toBe(0);
    node = runNode(['--name', 'sn1', '--listen', `127.0.0.1:${String(port)}`, '--api', serve.url, '--state-dir', join(dir, 'sn1')]);
    await node.running();
    const client = new NodeClient({ name: 'sn1', address: cp().address, certPem: cp().nodeCertPem }, cp().identity);
    try {
      expect((await client.health(AbortSignal.timeout(30_000))).name).toBe('sn1');
    } finally {
      client.close();
    }
  });
});

describe('enrollment over HTTPS pinned to the fingerprint the token carries', () => {
  let s: InProcessServer;
  let url: string;
  let store: Store;
  let apiIdentity: TlsIdentity;

  beforeAll(async () => {
    // tls: on: the API serves HTTPS with its own certificate, and tokens carry that certificate's pin.
    s = await startInProcessServer({ tls: 'on', host: '127.0.0.1' });
    await s.api.ok('POST', '/v1/nodes', 201, { body: { name: 'warm', address: '127.0.0.1' } });
    store = await openStore(s.config.databaseUrl);
    const identity = await new ControlIdentities(store, new NodeRepository(), SecretBox.fromKeyFile(s.config.secretKeyFile), runner).get('api');
    apiIdentity = identity;
    url = s.server.url;
    expect(url).toMatch(/^https:/);
  }, 120_000);

  afterAll(async () => {
    await store.close();
    await s.close();
  });

  it('enrolls when the API shows the pinned certificate, and not before checking it', async () => {
    const e = await s.api.ok<NodeEnrollment>('POST', '/v1/nodes', 201, { body: { name: 'sn2', address: '127.0.0.1' } });
    const parsed = parseEnrollmentToken(e.enrollToken);
    expect(parsed.apiFingerprint).toBe(apiIdentity.fingerprint);
    const key = await generateIdentity(runner, 'sn2', ['127.0.0.1']);
    // A token pinning another certificate: refused by the node itself, the token never sent (it still works after).
    const otherPin = formatEnrollmentToken({ ...parsed, apiFingerprint: `sha256:${'0'.repeat(64)}` });
    await expect(enrollNode('sn2', otherPin, url, key)).rejects.toThrow(/not the sha256:0{64} the token pins/);
    await expect(enrollNode('sn2', e.enrollToken, url.replace('https:', 'http:'), key)).rejects.toThrow(/https/);
    const answer = await enrollNode('sn2', e.enrollToken, url, key);
    expect(answer.node).toBe('sn2');
    const n = await s.api.ok<{ keyFingerprint: string; state: string }>('GET', '/v1/nodes/sn2', 200);
    expect(n).toMatchObject({ keyFingerprint: key.fingerprint, state: 'syncing' });
    await expect(enrollNode('sn2', e.enrollToken, url, key)).rejects.toMatchObject({ code: 'ENROLLMENT_INVALID' });
  });

  it('the enroll route needs no bearer token and refuses every bad token alike', async () => {
    const res = await pinnedFetch({ fingerprint: apiIdentity.fingerprint })(`${s.server.url}/v1/nodes/nope/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 'stw1.node.AAAAAAAAAAAAAAAAAAAA.plain', certPem: apiIdentity.certPem }) });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { code: string }).code).toBe('ENROLLMENT_INVALID');
  });
});

