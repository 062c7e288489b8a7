import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { expect } from 'vitest';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import { isTempFileName, parseImageFileName } from '../../src/drivers/dir/dir-paths.js';
import { nodeFailpointsReachedPath } from '../../src/node/run-node.js';
import type { Database } from '../../src/store/schema.js';
import { openStore } from '../../src/store/store.js';
import { closedPort } from '../cli/cli-harness.js';
import { registerLabHosts, showAccounts, showTargets, tgtUri } from '../e2e-iscsi/e2e-kit.js';
import { clientFor, makeTempDir, pollUntil, REPO_ROOT, removeTempDir, spawnServer, type ApiClient, type SpawnedServer } from '../helpers/server.js';
import { startLab, type Lab } from '../lab/lab.js';

const CLI = join(REPO_ROOT, 'bin', 'stowage.js');

/** A `stowage node run` child this test started (stopped or killed by its PID only). */
export class NodeChild {
  out = '';
  private exitStatus: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { this.out += d; });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { this.out += d; });
    this.exited = new Promise((resolve) => { child.once('exit', (code, signal) => { this.exitStatus = { code, signal }; resolve({ code, signal }); }); });
  }

  get hasExited(): boolean {
    return this.exitStatus !== null;
  }

  async running(): Promise<void> {
    await pollUntil('stowage node running', () => {
      if (this.exitStatus !== null) throw new Error(`stowage node run exited ${JSON.stringify(this.exitStatus)}:\n${this.out}`);
      return Promise.resolve(this.out.includes('stowage node running') ? true : undefined);
    }, 60_000);
  }

  async kill9(): Promise<void> {
    if (this.exitStatus === null && this.child.pid !== undefined) process.kill(this.child.pid, 'SIGKILL');
    await this.exited;
  }

  async stop(): Promise<void> {
    if (this.exitStatus === null && this.child.pid !== undefined) process.kill(this.child.pid, 'SIGTERM');
    await this.exited;
  }
}

/**
 * The world of the node kill matrix: a real `stowage serve` (SQLite) and one enrolled
 * `stowage node run` on loopback, with a dir backend (`nd`) and a tgt backend (`nt`, over a
 * private tgtd of the lab, its LUNs in a plain directory) placed on that node, and two lab hosts.
 */
export class NodeWorld {
  private readonly root = makeTempDir('stowage-node-kill-');
  readonly cpDir = join(this.root, 'cp');
  readonly stateDir = join(this.root, 'sn1');
  readonly dirBackendDir = join(this.root, 'nd');
  readonly lunDir = join(this.root, 'luns');
  serve: SpawnedServer | null = null;
  node: NodeChild | null = null;
  lab: Lab | null = null;
  private port = 0;
  private epochBefore = 0;

  get api(): ApiClient {
    if (!this.serve) throw new Error('no serve');
    return clientFor(this.serve);
  }

  async setUp(): Promise<void> {
    for (const d of [this.cpDir, this.dirBackendDir, this.lunDir]) mkdirSync(d, { mode: 0o700 });
    this.lab = await startLab({ hosts: 2, tgtd: true, btrfs: false, xfs: false });
    await this.startServe();
    this.port = await closedPort();
    const created = await this.api.ok<{ enrollToken: string }>('POST', '/v1/nodes', 201, { body: { name: 'sn1', address: `127.0.0.1:${String(this.port)}` } });
    const tokenFile = join(this.root, 'sn1.token');
    writeFileSync(tokenFile, `${created.enrollToken}\n`, { mode: 0o600 });
    await this.startNode(undefined, ['--enroll-file', tokenFile]);
    await this.nodeReady();
    await registerLabHosts(this.api, this.lab);
    await this.backend('nd', `dir://${this.dirBackendDir}`);
    await this.backend('nt', tgtUri(this.lab, `dir://${this.lunDir}`));
  }

  async tearDown(): Promise<void> {
    await this.node?.kill9();
    await this.serve?.kill9();
    await this.lab?.stop();
    removeTempDir(this.root);
  }

  /** Starts (or restarts, same data dir) the control plane. */
  async startServe(): Promise<void> {
    // Lease 1 s etc. come from spawnServer (twin on shipped timings: test/defaults/replica-lease.ts); node heartbeat and wait backoff stay at their defaults.
    this.serve = await spawnServer({ dataDir: this.cpDir, env: { STOWAGE_DEFAULT_BACKEND: 'false' } });
  }

  /** Starts the node (same state dir), with `failpoints` when given; waits until it serves. */
  async startNode(failpoints?: string, extra: readonly string[] = []): Promise<NodeChild> {
    if (!this.serve) throw new Error('no serve');
    rmSync(nodeFailpointsReachedPath(this.stateDir), { force: true });
    // A (re)started node is synced under a new epoch: until then the row may still say `ready` from before.
    this.epochBefore = (await this.api.ok<{ epoch: number }>('GET', '/v1/nodes/sn1', 200)).epoch;
    const child = spawn(process.execPath, [CLI, 'node', 'run', '--name', 'sn1', '--listen', `127.0.0.1:${String(this.port)}`, '--api', this.serve.url, '--state-dir', this.stateDir, ...extra], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: this.root, ...(failpoints !== undefined ? { STOWAGE_NODE_FAILPOINTS: failpoints } : {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.node = new NodeChild(child);
    await this.node.running();
    return this.node;
  }

  /**
   * Waits until the control plane has synced the node process started last (an epoch after the one
   * before its start) and calls it ready, and no backend on it is offline any more.
   */
  async nodeReady(): Promise<void> {
    await pollUntil('node sn1 ready', async () => {
      const n = await this.api.ok<{ state: string; epoch: number }>('GET', '/v1/nodes/sn1', 200);
      if (n.state !== 'ready' || n.epoch <= this.epochBefore) return undefined;
      const backends = await this.api.ok<{ items: { node: string | null; state: string }[] }>('GET', '/v1/backends', 200);
      return backends.items.every((b) => b.node !== 'sn1' || b.state !== 'offline') ? true : undefined;
    }, 90_000);
  }

  /** Failpoints the node recorded as reached (its state dir). */
  reached(): string[] {
    const f = nodeFailpointsReachedPath(this.stateDir);
    return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : [];
  }

  private async backend(name: string, driver: string): Promise<void> {
    await this.api.ok('POST', '/v1/backends', 201, { body: { name, driver, node: 'sn1' } });
    await pollUntil(`backend ${name} probed`, async () => {
      // Probed at once through the node (the periodic probe is slowed by spawnServer).
      const b = await this.api.ok<{ state: string; stateReason: string | null; capabilities: string[] }>('GET', `/v1/backends/${name}`, 200);
      if (b.state === 'offline' || b.state === 'error' || b.capabilities.length === 0) throw new Error(`backend ${name} is ${b.state}: ${b.stateReason ?? ''}`);
      return true;
    }, 60_000);
  }

  /** Waits until operation `id` is finished and returns it. */
  async finished(id: string): Promise<Operation> {
    return pollUntil(`operation ${id} to finish`, async () => {
      const o = await this.api.ok<Operation>('GET', `/v1/operations/${id}`, 200);
      return o.state === 'succeeded' || o.state === 'failed' ? o : undefined;
    }, 120_000);
  }

  async withStore<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    const store = await openStore(`sqlite://${join(this.cpDir, 'stowage.db')}`);
    try {
      return await fn(store.db);
    } finally {
      await store.close();
    }
  }

  /**
   * Ground truth equals the store: the dir backend's directory holds exactly one `<id>.raw` per
   * live volume on it, each its recorded size; tgtd holds exactly one target per live tgt volume,
   * its ACL the addresses of the volume's active grants (no orphan target, no missing or duplicate grant).
   */
  async checkWorld(db: Kysely<Database>): Promise<void> {
    const lab = this.lab;
    if (!lab) throw new Error('no lab');
    const live = await db.selectFrom('volumes').innerJoin('backends', 'backends.id', 'volumes.backend_id')
      .select(['volumes.id', 'volumes.size_bytes', 'backends.name as backend']).where('volumes.state', '<>', 'deleted').execute();
    const files = readdirSync(this.dirBackendDir);
    const images = files.map((f) => parseImageFileName(f)).filter((f) => f !== undefined);
    expect(images.filter((f) => f.kind === 'volume').map((f) => f.id).sort(), 'volume files on the node\'s dir backend').toEqual(live.filter((v) => v.backend === 'nd').map((v) => v.id).sort());
    const snaps = await db.selectFrom('snapshots').innerJoin('backends', 'backends.id', 'snapshots.backend_id')
      .select(['snapshots.id']).where('snapshots.state', '<>', 'deleted').where('backends.name', '=', 'nd').execute();
    expect(images.filter((f) => f.kind === 'snapshot').map((f) => f.id).sort(), 'snapshot files on the node\'s dir backend').toEqual(snaps.map((x) => x.id).sort());
    expect(files.filter((f) => isTempFileName(f)), 'temporary files left on the node\'s dir backend').toEqual([]);
    const lunFiles = readdirSync(this.lunDir).filter((f) => f.endsWith('.raw')).sort();
    const tgtVols = live.filter((v) => v.backend === 'nt');
    expect(lunFiles, 'LUN files of the tgt backend').toEqual(tgtVols.map((v) => `${v.id}.raw`).sort());
    const targets = await showTargets(lab);
    expect(targets.map((t) => t.iqn.replace(/^.*:/, '')).sort(), 'targets on tgtd').toEqual(tgtVols.map((v) => v.id).sort());
    const grants = await db.selectFrom('grants').innerJoin('hosts', 'hosts.id', 'grants.host_id')
      .select(['grants.volume_id', 'hosts.addresses']).where('grants.state', '=', 'active').execute();
    for (const v of tgtVols) {
      const t = targets.find((x) => x.iqn.endsWith(`:${v.id}`));
      const want = grants.filter((g) => g.volume_id === v.id).flatMap((g) => JSON.parse(g.addresses) as string[]).sort();
      expect([...(t?.aclAddresses ?? [])].sort(), `${v.id}: ACL on tgtd`).toEqual(want);
    }
    expect(new Set(await showAccounts(lab)).size, 'no duplicate CHAP account on tgtd').toBe((await showAccounts(lab)).length);
  }
}
