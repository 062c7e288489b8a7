import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { DriverCache } from '../../src/backends/driver-cache.js';
import { idOf, newId } from '../../src/core/ids.js';
import { DRIVER_FACTORIES } from '../../src/drivers/driver-factories.js';
import { DriverRegistry } from '../../src/drivers/sdk/registry.js';
import type { BlockDriver } from '../../src/drivers/sdk/types.js';
import { callRoutes } from '../../src/node/call-routes.js';
import { dataRoutes } from '../../src/node/data-routes.js';
import { NodeDriverHost } from '../../src/node/driver-host.js';
import { startNodeServer, type NodeRouteHandler, type RunningNode } from '../../src/node/node-server.js';
import type { NodeChannel, NodeChannels } from '../../src/nodes/node-channels.js';
import { NodeClient } from '../../src/nodes/node-client.js';
import type { BackendSpec } from '../../src/nodes/node-protocol.js';
import { RemoteDrivers } from '../../src/nodes/remote-driver.js';
import { nowIso } from '../../src/store/json.js';
import type { NodeRow } from '../../src/store/schema.js';
import { SpawnCommandRunner, type CommandRunner } from '../../src/system/command-runner.js';
import { fingerprintOf, generateIdentity, type TlsIdentity } from '../../src/system/tls-identity.js';
import type { ServiceWorld } from '../services/services-kit.js';

/*
 * Real storage nodes for tests, in this process on loopback: `startNodeServer` with its health and
 * epoch routes and the real driver-call and data routes, as `stowage node run` serves them, reached
 * over real pinned mutual TLS; and the control plane's side of them (channels, node rows, remote
 * backends) without or with a service world.
 */

export { closedPort } from '../cli/cli-harness.js';

const spawnRunner = new SpawnCommandRunner();

/** The two identities of a test: the node's and the control plane's `node-client`. */
export interface TestIdentities {
  readonly node: TlsIdentity;
  readonly control: TlsIdentity;
}

let identities: Promise<TestIdentities> | undefined;

/** Generated once per test file (openssl per identity). */
export function testIdentities(runner: CommandRunner = spawnRunner): Promise<TestIdentities> {
  identities ??= (async () => ({
    node: await generateIdentity(runner, 'node-test', ['127.0.0.1']),
    control: await generateIdentity(runner, 'stowage-node-client'),
  }))();
  return identities;
}

/** A fresh node identity (key and self-signed certificate for 127.0.0.1), for a node of its own. */
export function nodeIdentity(name: string, runner: CommandRunner = spawnRunner): Promise<TlsIdentity> {
  return generateIdentity(runner, `stowage-node-${name}`, ['127.0.0.1']);
}

/** The control plane's `node-client` identity of this test file (the one testIdentities holds). */
export async function controlPlaneIdentity(runner: CommandRunner = spawnRunner): Promise<TlsIdentity> {
  return (await testIdentities(runner)).control;
}

export { codeOf } from '../helpers/error-codes.js';

/** A pino logger at debug level whose lines are kept in memory, to look for what must not be logged. */
export function capturedLogger(): { logger: Logger; text: () => string } {
  const lines: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(chunk.toString('utf8')); cb(); } });
  return { logger: pino({ level: 'debug' }, sink), text: () => lines.join('') };
}

/** How to start a test node; every field has a default. */
export interface TestNodeOptions {
  /** The node's name (default `node-test`). */
  readonly name?: string;
  /** Runs the node's driver commands (default: a real SpawnCommandRunner). */
  readonly runner?: CommandRunner;
  /** The key and certificate the node serves (default: testIdentities().node). */
  readonly identity?: TlsIdentity;
  /** The only client certificate the node accepts (default: testIdentities().control's). */
  readonly controlCertPem?: string;
  /** Loopback port to listen on (default 0: any free one). */
  readonly port?: number;
  /** Routes added over the built-in health, epoch, call and data routes. */
  readonly routes?: Readonly<Record<string, NodeRouteHandler>>;
}

/** A `stowage node` server in this process, on a loopback port, with one dir:// backend in its temp dir. */
export interface TestNode {
  readonly name: string;
  /** The node's temp dir: `state/` (its data dir) and `volumes/` (its dir:// backend). */
  readonly root: string;
  readonly dataDir: string;
  readonly identity: TlsIdentity;
  readonly backend: BackendSpec;
  readonly host: NodeDriverHost;
  /** The backend's driver as the node runs it (to create and inspect volumes directly). */
  readonly driver: BlockDriver;
  /** What the node logged (at debug level). */
  readonly log: () => string;
  server: RunningNode;
  /** The port it listens on (it keeps it across restarts). */
  readonly port: number;
  /** Stops the server, every connection cut (as a crash or partition would); restart() brings it back. */
  kill(): Promise<void>;
  /** Stops the server if it runs and starts a new process state (new boot id, epoch 0) on the same port. */
  restart(): Promise<void>;
  /** Stops the server and its drivers and removes its temp dir. */
  stop(): Promise<void>;
}

/**
 * Starts a node: `startTestNode(runner, name?, controlCertPem?)` runs `runner`'s commands and
 * trusts `controlCertPem` (default: the test's control identity); `startTestNode(options)` for the rest.
 */
export async function startTestNode(runner: CommandRunner, name?: string, controlCertPem?: string): Promise<TestNode>;
export async function startTestNode(options?: TestNodeOptions): Promise<TestNode>;
export async function startTestNode(first: CommandRunner | TestNodeOptions = {}, name?: string, controlCertPem?: string): Promise<TestNode> {
  const o: TestNodeOptions = 'run' in first ? { runner: first, ...(name === undefined ? {} : { name }), ...(controlCertPem === undefined ? {} : { controlCertPem }) } : first;
  const runner = o.runner ?? spawnRunner;
  const nodeName = o.name ?? 'node-test';
  const ids = await testIdentities(runner);
  const identity = o.identity ?? ids.node;
  const trusted = o.controlCertPem ?? ids.control.certPem;
  const root = await mkdtemp(join(tmpdir(), `stowage-node-${nodeName}-`));
  const [dataDir, volumes] = [join(root, 'state'), join(root, 'volumes')];
  await mkdir(dataDir, { mode: 0o700 });
  await mkdir(volumes, { mode: 0o700 });
  const { logger, text } = capturedLogger();
  const host = new NodeDriverHost(DRIVER_FACTORIES, { runner, dataDir });
  const backend: BackendSpec = { id: `backend-${nodeName}`, name: `${nodeName}-dir`, uri: `dir://${volumes}?format=raw`, options: {} };
  const boot = (port: number): Promise<RunningNode> => startNodeServer({
    name: nodeName, listen: { host: '127.0.0.1', port }, identity, controlPlaneCertPem: trusted,
    dataDir, runner, factories: DRIVER_FACTORIES, logger, version: '9.9.9-test',
  }, { ...callRoutes(host, logger), ...dataRoutes(host), ...o.routes });
  const node: TestNode = {
    name: nodeName, root, dataDir, identity, backend, host, driver: host.driverFor(backend), log: text,
    server: await boot(o.port ?? 0),
    get port() { return node.server.address.port; },
    kill: () => node.server.close(),
    async restart() {
      const port = node.port;
      await node.server.close();
      node.server = await boot(port);
    },
    async stop() {
      await node.server.close();
      await host.closeAll();
      await rm(root, { recursive: true, force: true });
    },
  };
  return node;
}

/** A node row as the store would hold it for an enrolled, ready node. */
/** What a channel needs of a node: its name, the certificate it serves and where it listens. */
export type ChannelTarget = Pick<TestNode, 'name' | 'identity' | 'server'>;

export function nodeRow(node: ChannelTarget, certPem: string, epoch: number): NodeRow {
  const now = new Date().toISOString();
  return {
    id: `node-id-${node.name}`, name: node.name, address: `127.0.0.1:${node.server.address.port}`, state: 'ready', state_reason: null,
    admin_state: 'active', version: 'test', boot_id: node.server.bootId, epoch, cert_pem: certPem, cert_fingerprint: null,
    cert_expires_at: null, enroll_token_hash: null, enroll_expires_at: null, last_heartbeat_at: now, clock_skew_ms: 0,
    unreachable_since: null, created_at: now, updated_at: now,
  };
}

/**
 * NodeChannels for one test node, held in memory (the store-backed one is tested with the store):
 * the row says which epoch and boot id the control plane believes in; `sync()` does what a
 * reconnect does (opens the next epoch on the node and records its boot id). It pins the
 * identity the node serves and calls as `ids.control`.
 */
export class TestChannels implements NodeChannels {
  row: NodeRow;
  client: NodeClient;

  constructor(private readonly node: ChannelTarget, ids: TestIdentities) {
    this.row = nodeRow(node, node.identity.certPem, 0);
    this.client = new NodeClient({ name: node.name, address: this.row.address, certPem: node.identity.certPem }, ids.control);
  }

  private lost = new AbortController();

  async channel(): Promise<NodeChannel> {
    return { client: this.client, epoch: this.row.epoch, node: this.row, lost: this.lost.signal };
  }

  /** What the node monitor does to a node it finds down: cuts every call and stream in flight with `reason`. */
  abortCalls(reason: Error): void {
    const cur = this.lost;
    this.lost = new AbortController();
    cur.abort(reason);
  }

  /** Opens epoch row.epoch + 1 on the node and takes its boot id, as the control plane does after a (re)connect. */
  async sync(): Promise<void> {
    const epoch = this.row.epoch + 1;
    const health = await this.client.openEpoch(epoch, AbortSignal.timeout(10_000));
    this.row = { ...this.row, epoch, boot_id: health.bootId, address: `127.0.0.1:${this.node.server.address.port}` };
  }

  close(): void {
    this.client.close();
  }
}

/** Test nodes by name, each with an identity of its own, their channels, and all of them as one NodeChannels by name. */
export interface TestFleet {
  readonly nodes: Readonly<Record<string, TestNode>>;
  readonly channels: Readonly<Record<string, TestChannels>>;
  readonly all: NodeChannels;
  /** Closes the channels and stops every node. */
  stop(): Promise<void>;
}

/** Starts nodes `names` (as `startTestNode({ name, runner, identity })`) with a TestChannels to each. */
export async function startTestFleet(names: readonly string[], runner: CommandRunner = spawnRunner): Promise<TestFleet> {
  const ids = await testIdentities(runner);
  const list = await Promise.all(names.map(async (name) => startTestNode({ name, runner, identity: await nodeIdentity(name, runner) })));
  const nodes = Object.fromEntries(list.map((n) => [n.name, n]));
  const channels = Object.fromEntries(list.map((n) => [n.name, new TestChannels(n, ids)]));
  return {
    nodes, channels,
    all: {
      channel: (nodeId) => {
        const ch = channels[nodeId];
        return ch ? ch.channel() : Promise.reject(new Error(`no test node ${nodeId}`));
      },
    },
    stop: async () => {
      for (const ch of Object.values(channels)) ch.close();
      await Promise.all(list.map((n) => n.stop()));
    },
  };
}

/** The control plane's side: a remote driver for backend `uri` on the test node, built by DriverCache as for a real node backend, and the local driver of the same URI (its shape; its paths are valid here, the node being this machine). */
export function remoteBackend(channels: NodeChannels, runner: CommandRunner, controlDataDir: string, uri: string, nodeId: string): { driver: BlockDriver; local: BlockDriver } {
  const registry = new DriverRegistry(DRIVER_FACTORIES);
  const cache = new DriverCache(registry, { runner, dataDir: controlDataDir }, new RemoteDrivers(channels));
  const id = newId('backend');
  const driver = cache.get({ id, name: `remote-${id}`, driver_uri: uri, options: '{}', node_id: nodeId });
  return { driver, local: registry.create(uri, {}, { runner, dataDir: controlDataDir }) };
}

/** The certificate of the world's own `node-client` identity (what its node monitor calls nodes with). */
export async function worldControlCertPem(w: ServiceWorld): Promise<string> {
  return (await w.cp.identities.get('node-client')).certPem;
}

/** Inserts a node row into the world's store as enrollment leaves it (its certificate pinned), in `state`. */
export async function insertNode(w: ServiceWorld, name: string, port: number, certPem: string, state: NodeRow['state'] = 'syncing'): Promise<NodeRow> {
  const at = nowIso();
  const id = `nd-${name}-${String(Date.now())}`;
  await w.cp.repos.nodes.insert(w.store.db, {
    id, name, address: `127.0.0.1:${String(port)}`, state, state_reason: null, version: null, boot_id: null, cert_pem: certPem,
    cert_fingerprint: fingerprintOf(certPem), cert_expires_at: null, enroll_token_hash: null, enroll_expires_at: null,
    last_heartbeat_at: null, clock_skew_ms: null, unreachable_since: state === 'unreachable' ? at : null, created_at: at, updated_at: at,
  });
  const row = await w.cp.repos.nodes.findById(w.store.db, id);
  if (!row) throw new Error('node row vanished');
  return row;
}

/** Registers a dir backend in the world and moves it onto node `nodeId` (its driver now runs there). */
export async function backendOnNode(w: ServiceWorld, name: string, nodeId: string): Promise<{ id: string; name: string; dir: string }> {
  const { backend, dir } = await w.addDirBackend(name);
  await w.cp.repos.backends.update(w.store.db, idOf('backend', backend.id), { node_id: nodeId });
  return { id: backend.id, name: backend.name, dir };
}
