import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { ensureBuilt, listensOn, REPO_ROOT, sleep } from '../helpers/server.js';
import { startLab, type Lab, type LabStorageNode, type StorageNodeSpec } from './lab.js';
import { freeTcpPort } from './ports.js';
import { isProcessAlive } from './state.js';

/**
 * A fleet for the storage-node tests: the lab (storage nodes + hypervisor hosts), a real
 * `stowage serve` (the built dist/main.js) in the ROOT namespace listening on the bridge address
 * with TLS on, the built CLI pointed at it, and `stowage node run` started inside each storage node.
 * Everything it starts is recorded in the lab state, so teardown and stale cleanup remove it.
 */

const CLI_ENTRY = join(REPO_ROOT, 'bin', 'stowage.js');
const SERVER_MAIN = join(REPO_ROOT, 'dist', 'main.js');
/** Port `stowage node run` listens on inside each node. */
export const NODE_PORT = 8751;
/** Longest one CLI run may take before it is killed, in ms. */
const CLI_LIMIT_MS = 60_000;

/** What to bring up. */
export interface FleetOptions {
  /** Storage nodes (count or specs; default 2). */
  readonly storageNodes?: number | readonly StorageNodeSpec[];
  /** Hypervisor namespace hosts (default 2). */
  readonly hosts?: number;
  /** Extra STOWAGE_* variables for `stowage serve` (timers, failpoints). */
  readonly serverEnv?: Readonly<Record<string, string>>;
  /** Store URL; default SQLite in the server's data dir. */
  readonly databaseUrl?: string;
  /** `stowage node run --log-level` (default info; debug logs each driver call with its duration). */
  readonly nodeLogLevel?: string;
}

/** How one CLI run ended and what it printed. */
export interface FleetCliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The control plane of a fleet (`node dist/main.js serve`). */
export interface FleetServer {
  readonly pid: number;
  /** host:port it listens on (the bridge address). */
  readonly listen: string;
  readonly dataDir: string;
  /** The CLI config the server's first start wrote (URL, admin token; what the CLI uses). */
  readonly cliConfigPath: string;
  /** stdout and stderr so far (never holds a token after the first start's banner). */
  output(): string;
  hasExited(): boolean;
}

/** A `stowage node run` started in a storage node. */
export interface FleetNodeAgent {
  readonly node: LabStorageNode;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Its log file (stdout + stderr), in the node's dir. */
  readonly logFile: string;
}

/** A running fleet; `stop()` removes everything. */
export interface Fleet {
  readonly lab: Lab;
  readonly server: FleetServer;
  /** The API's base URL as the server wrote it to its CLI config (https:// once TLS is served). */
  apiUrl(): string;
  /** Runs the built `stowage ...args` against the fleet's control plane. */
  cli(args: readonly string[], env?: Readonly<Record<string, string>>): Promise<FleetCliResult>;
  /** Runs `stowage ...args -o json`, parsing stdout; throws with the exit code and stderr otherwise. */
  cliJson<T>(args: readonly string[]): Promise<T>;
  /**
   * Registers the node (`stowage node create <name> --address <addr> -o json`), hands its
   * enrollment token to `stowage node run` in a 0600 file (never in argv) and starts it inside the
   * node; resolves once `stowage node show` says the node is ready.
   */
  startNodeAgent(node: LabStorageNode | string): Promise<FleetNodeAgent>;
  /** startNodeAgent for every storage node, in order. */
  startNodeAgents(): Promise<FleetNodeAgent[]>;
  /** kill -9 of a node agent (by its PID), waiting until it is gone. */
  killNodeAgent(agent: FleetNodeAgent): Promise<void>;
  /** Starts `stowage node run` again in the node after a kill, with its kept key (no enrollment). */
  restartNodeAgent(agent: FleetNodeAgent): Promise<FleetNodeAgent>;
  /** kill -9 of the control plane. */
  killServer(): Promise<void>;
  /** Starts the control plane again on the same data dir and address. */
  restartServer(): Promise<FleetServer>;
  /** SIGTERM the control plane (SIGKILL after 15 s), then tear the lab down. Idempotent. */
  stop(): Promise<void>;
}

interface ServerProcess extends FleetServer {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
}

function launchServer(lab: Lab, dataDir: string, port: number, opts: FleetOptions): ServerProcess {
  const cliConfigPath = join(dataDir, 'cli.json');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: dataDir,
    STOWAGE_DATA_DIR: dataDir,
    STOWAGE_HOST: lab.bridgeAddress,
    STOWAGE_PORT: String(port),
    STOWAGE_TLS: 'on',
    STOWAGE_CLI_CONFIG: cliConfigPath,
    STOWAGE_LOG_LEVEL: 'warn',
    ...(opts.databaseUrl !== undefined ? { STOWAGE_DATABASE_URL: opts.databaseUrl } : {}),
    ...(opts.serverEnv ?? {}),
  };
  const child = spawn(process.execPath, [SERVER_MAIN, 'serve'], { cwd: dataDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not spawn node dist/main.js serve');
  lab.adoptProcess(pid, `${SERVER_MAIN} serve`);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
  let done = false;
  const exited = new Promise<void>((res) => child.once('exit', () => { done = true; res(); }));
  return {
    pid, child, exited, dataDir, cliConfigPath,
    listen: `${lab.bridgeAddress}:${String(port)}`,
    // The first start prints the admin token once: keep it out of anything a failure message shows.
    output: () => out.replace(/(Admin API token[^\n]*\n\s*)\S+/g, '$1<redacted>'),
    hasExited: () => done,
  };
}

/** One GET of /healthz over https or http; true on a 200. The certificate is not checked: this only asks "is it up", the CLI pins it. */
function healthy(scheme: 'https' | 'http', listen: string): Promise<boolean> {
  const get = scheme === 'https' ? httpsGet : httpGet;
  return new Promise((resolve) => {
    const req = get(`${scheme}://${listen}/healthz`, { timeout: 2000, ...(scheme === 'https' ? { rejectUnauthorized: false } : {}) }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => { req.destroy(); });
    req.on('error', () => { resolve(false); });
  });
}

async function waitForServer(s: ServerProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const port = s.listen.slice(s.listen.lastIndexOf(':') + 1);
  while (Date.now() < deadline) {
    if (s.hasExited()) throw new Error(`stowage serve exited before it was ready:\n${s.output()}`);
    // Only this process's answer counts (another one could hold the port).
    if (listensOn(s.pid, port) && ((await healthy('https', s.listen)) || (await healthy('http', s.listen))) && existsSync(s.cliConfigPath)) return;
    await sleep(100);
  }
  throw new Error(`stowage serve did not answer /healthz on ${s.listen} within ${String(timeoutMs)} ms:\n${s.output()}`);
}

async function killAndWait(pid: number, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (!isProcessAlive(pid)) return;
  process.kill(pid, signal);
  const deadline = Date.now() + graceMs;
  while (isProcessAlive(pid)) {
    if (Date.now() > deadline) {
      if (signal === 'SIGKILL') throw new Error(`process ${String(pid)} survived SIGKILL`);
      return killAndWait(pid, 'SIGKILL', 10_000);
    }
    await sleep(50);
  }
}

class RunningFleet implements Fleet {
  private stopped = false;

  constructor(readonly lab: Lab, public server: ServerProcess, private readonly port: number, private readonly opts: FleetOptions) {}

  apiUrl(): string {
    const cfg = JSON.parse(readFileSync(this.server.cliConfigPath, 'utf8')) as { url?: unknown };
    if (typeof cfg.url !== 'string') throw new Error(`no url in ${this.server.cliConfigPath}`);
    return cfg.url;
  }

  /** The environment of a CLI run: only the fleet's config, nothing inherited that could point elsewhere. */
  private cliEnv(extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.STOWAGE_URL;
    delete env.STOWAGE_TOKEN;
    delete env.XDG_CONFIG_HOME;
    return { ...env, STOWAGE_CLI_CONFIG: this.server.cliConfigPath, HOME: this.server.dataDir, ...extra };
  }

  cli(args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<FleetCliResult> {
    const child = spawn(process.execPath, [CLI_ENTRY, ...args], { cwd: this.server.dataDir, env: this.cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    // A hung server must fail the test, not hang the run: this child (by its PID) is killed after a minute.
    const limit = setTimeout(() => { child.kill('SIGKILL'); }, CLI_LIMIT_MS);
    return new Promise((resolve, reject) => {
      child.once('error', (err) => { clearTimeout(limit); reject(err); });
      child.once('close', (code) => { clearTimeout(limit); resolve({ code, stdout, stderr }); });
    });
  }

  async cliJson<T>(args: readonly string[]): Promise<T> {
    const r = await this.cli([...args, '-o', 'json']);
    // stdout is left out on purpose: it may hold a token (`node create` prints the enrollment token).
    if (r.code !== 0) throw new Error(`stowage ${args.join(' ')} exited ${String(r.code)}: ${r.stderr.trim()}`);
    try {
      return JSON.parse(r.stdout) as T;
    } catch {
      throw new Error(`stowage ${args.join(' ')} -o json printed something that is not JSON`);
    }
  }

  private nodeArgv(node: LabStorageNode, enrollFile: string | null): string[] {
    return [
      process.execPath, CLI_ENTRY, 'node', 'run', '--name', node.name, '--listen', `${node.address}:${String(NODE_PORT)}`,
      '--api', this.apiUrl(), ...(enrollFile !== null ? ['--enroll-file', enrollFile] : []), '--state-dir', node.stateDir,
      ...(this.opts.nodeLogLevel !== undefined ? ['--log-level', this.opts.nodeLogLevel] : []),
    ];
  }

  private spawnAgent(node: LabStorageNode, enrollFile: string | null): FleetNodeAgent {
    const logFile = join(node.nodeDir, 'stowage-node.log');
    const fd = openSync(logFile, 'a', 0o600);
    let child: ChildProcess;
    try {
      const env = { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: node.stateDir, STOWAGE_LOG_LEVEL: 'info' };
      child = this.lab.spawnInNode(node, this.nodeArgv(node, enrollFile), { stdio: ['ignore', fd, fd], env, wd: node.nodeDir });
    } finally {
      closeSync(fd);
    }
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start stowage node run in ${node.name}`);
    return { node, pid: child.pid, child, logFile };
  }

  private async waitReady(agent: FleetNodeAgent, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (!isProcessAlive(agent.pid)) throw new Error(`stowage node run in ${agent.node.name} exited:\n${tail(agent.logFile)}`);
      const r = await this.cli(['node', 'show', agent.node.name, '-o', 'json']);
      if (r.code === 0) {
        // `node show -o json` prints the node itself (NodeSchema: state, stateReason, ...).
        const shown = JSON.parse(r.stdout) as { state?: unknown; stateReason?: unknown };
        last = typeof shown.state === 'string' ? `${shown.state}${typeof shown.stateReason === 'string' ? ` (${shown.stateReason})` : ''}` : '?';
        if (shown.state === 'ready') return;
      } else {
        last = r.stderr.trim();
      }
      await sleep(200);
    }
    throw new Error(`node ${agent.node.name} not ready within ${String(timeoutMs)} ms (last: ${last}):\n${tail(agent.logFile)}`);
  }

  async startNodeAgent(nodeOrName: LabStorageNode | string): Promise<FleetNodeAgent> {
    const node = typeof nodeOrName === 'string' ? this.lab.storageNode(nodeOrName) : nodeOrName;
    // `node create -o json` prints NodeEnrollment: { node, enrollToken, enrollExpiresAt }.
    const created = await this.cliJson<{ enrollToken?: unknown }>(['node', 'create', node.name, '--address', `${node.address}:${String(NODE_PORT)}`]);
    if (typeof created.enrollToken !== 'string') throw new Error(`stowage node create ${node.name} -o json gave no enrollToken field`);
    const enrollFile = join(node.stateDir, 'enroll-token');
    writeFileSync(enrollFile, `${created.enrollToken}\n`, { mode: 0o600 });
    const agent = this.spawnAgent(node, enrollFile);
    await this.waitReady(agent);
    return agent;
  }

  async startNodeAgents(): Promise<FleetNodeAgent[]> {
    const out: FleetNodeAgent[] = [];
    for (const n of this.lab.storageNodes) out.push(await this.startNodeAgent(n));
    return out;
  }

  async killNodeAgent(agent: FleetNodeAgent): Promise<void> {
    this.lab.killNodeProcess(agent.pid, 'SIGKILL');
    await killAndWait(agent.pid, 'SIGKILL', 10_000);
  }

  async restartNodeAgent(agent: FleetNodeAgent): Promise<FleetNodeAgent> {
    if (isProcessAlive(agent.pid)) await this.killNodeAgent(agent);
    // The token was single use: the node comes back with the key it kept in its state dir.
    const next = this.spawnAgent(agent.node, null);
    await this.waitReady(next);
    return next;
  }

  async killServer(): Promise<void> {
    await killAndWait(this.server.pid, 'SIGKILL', 10_000);
    await this.server.exited;
  }

  async restartServer(): Promise<FleetServer> {
    if (!this.server.hasExited()) await this.killServer();
    const s = launchServer(this.lab, this.server.dataDir, this.port, this.opts);
    this.server = s;
    await waitForServer(s);
    return s;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      if (!this.server.hasExited()) await killAndWait(this.server.pid, 'SIGTERM', 15_000);
    } finally {
      await this.lab.stop();
    }
  }
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Starts the lab with `storageNodes` (default 2) and `hosts` (default 2), and a control plane on
 * the bridge address (TLS on) whose data dir lives in the lab's run dir. Node agents are not
 * started: call `startNodeAgents()`. On failure everything started is removed.
 */
export async function startFleet(opts: FleetOptions = {}): Promise<Fleet> {
  await ensureBuilt();
  const lab = await startLab({ hosts: opts.hosts ?? 2, storageNodes: opts.storageNodes ?? 2, tgtd: false, btrfs: false, xfs: false });
  try {
    const dataDir = join(lab.runDir, 'control');
    mkdirSync(dataDir, { mode: 0o700 });
    const problems: string[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freeTcpPort(lab.bridgeAddress);
      const s = launchServer(lab, dataDir, port, opts);
      try {
        await waitForServer(s);
        return new RunningFleet(lab, s, port, opts);
      } catch (err) {
        problems.push(err instanceof Error ? err.message : String(err));
        await killAndWait(s.pid, 'SIGKILL', 10_000);
        if (!/EADDRINUSE/.test(s.output())) break;
        // The failed start may have written its CLI config for the lost port: begin afresh.
        rmSync(dataDir, { recursive: true, force: true });
        mkdirSync(dataDir, { mode: 0o700 });
      }
    }
    throw new Error(`the fleet's control plane did not start:\n${problems.join('\n---\n')}`);
  } catch (err) {
    await lab.stop();
    throw err;
  }
}
