import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig, type Config } from '../../src/config/config.js';
import type { Logger } from 'pino';
import { startServer, type RunningServer } from '../../src/server.js';
import { pinnedFetch, type ApiPin } from '../../src/system/pinned-fetch.js';
import { freeTcpPort } from '../lab/ports.js';

/** Root of the repository (where package.json and dist/ live). */
export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');

/** A fresh private temp directory for one test (removed by `removeTempDir`). */
export function makeTempDir(prefix = 'stowage-test-'): string {
  return mkdtempSync(join(tmpdir(), `${prefix}${String(process.pid)}-`));
}

/** Removes a directory made by makeTempDir (ignores one already gone). */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** The API pin the server wrote into its CLI config, when it serves HTTPS. */
function readPin(cliConfigPath: string): ApiPin | undefined {
  const cfg = JSON.parse(readFileSync(cliConfigPath, 'utf8')) as { apiFingerprint?: unknown; apiCertPem?: unknown };
  if (typeof cfg.apiFingerprint !== 'string') return undefined;
  return { fingerprint: cfg.apiFingerprint, certPem: typeof cfg.apiCertPem === 'string' ? cfg.apiCertPem : undefined };
}

/** Reads the admin token the first start wrote to the CLI config file. */
export function readToken(cliConfigPath: string): string {
  const cfg = JSON.parse(readFileSync(cliConfigPath, 'utf8')) as { token?: unknown };
  if (typeof cfg.token !== 'string' || cfg.token === '') throw new Error(`no token in ${cliConfigPath}`);
  return cfg.token;
}

/** A decoded HTTP answer: status and parsed JSON body (undefined when empty or not JSON). */
export interface ApiResponse {
  readonly status: number;
  readonly body: unknown;
  readonly text: string;
}

/** Options of one API request. */
export interface ApiRequestOptions {
  /** JSON body (serialized) — or a raw string/Buffer sent as is with `contentType`. */
  readonly body?: unknown;
  readonly rawBody?: string | Buffer;
  readonly contentType?: string;
  /** Bearer token; `null` sends no Authorization header; default the client's token. */
  readonly token?: string | null;
  readonly headers?: Readonly<Record<string, string>>;
  /** The client address the server sees (InjectClient only: a label, nothing is sent anywhere). */
  readonly remoteAddress?: string;
}

/**
 * The request shape every API test uses, whatever carries the request: `ApiClient` over a real
 * socket (fetch), `InjectClient` (test/helpers/inject.ts) through Fastify's `app.inject()`.
 */
export abstract class JsonClient {
  constructor(readonly token: string) {}

  /** Sends one request; never throws for HTTP error statuses. */
  abstract request(method: string, path: string, opts?: ApiRequestOptions): Promise<ApiResponse>;

  /** Sends a request and returns the JSON body, failing unless the status is `expected`. */
  async ok<T>(method: string, path: string, expected: number | readonly number[], opts: ApiRequestOptions = {}): Promise<T> {
    const r = await this.request(method, path, opts);
    const want = typeof expected === 'number' ? [expected] : expected;
    if (!want.includes(r.status)) throw new Error(`${method} ${path}: expected ${want.join('|')}, got ${String(r.status)}: ${r.text}`);
    return r.body as T;
  }
}

/** Parses an answer's text as JSON (undefined when empty or not JSON). */
export function parseJsonText(text: string): unknown {
  try {
    return text === '' ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A tiny JSON client over real HTTP (fetch) with the admin token. */
export class ApiClient extends JsonClient {
  /** `fetchFn`: pinnedFetch for an API that serves HTTPS with its self-signed certificate. */
  constructor(readonly baseUrl: string, token: string, private readonly fetchFn: typeof fetch = fetch) {
    super(token);
  }

  /** Sends one request; never throws for HTTP error statuses. */
  async request(method: string, path: string, opts: ApiRequestOptions = {}): Promise<ApiResponse> {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    const token = opts.token === undefined ? this.token : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | Buffer | undefined;
    if (opts.rawBody !== undefined) {
      body = opts.rawBody;
      if (opts.contentType !== undefined) headers['content-type'] = opts.contentType;
    } else if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = opts.contentType ?? 'application/json';
    }
    const res = await this.fetchFn(`${this.baseUrl}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    return { status: res.status, body: parseJsonText(text), text };
  }
}

/** An in-process server for API tests: the real composition (startServer), on a free port. */
export interface InProcessServer {
  readonly server: RunningServer;
  readonly config: Config;
  readonly dataDir: string;
  /** A temp dir beside the data dir for the test's own backend directories (none may be inside the data dir). */
  readonly scratchDir: string;
  readonly api: ApiClient;
  readonly token: string;
  /** Stops the server and removes its temp dirs. */
  close(): Promise<void>;
}

/** Starts `startServer` in this process with a temp data dir, port 0, silent logs (or `logger`) and slow probes. */
export async function startInProcessServer(overrides: Partial<Config> = {}, logger?: Logger): Promise<InProcessServer> {
  const dataDir = makeTempDir('stowage-api-');
  const scratchDir = makeTempDir('stowage-api-backends-');
  const cliConfigPath = join(dataDir, 'cli.json');
  // Probes slowed to a minute so API tests see only the states they set; the probe on its shipped interval: test/defaults/backend-probe.ts.
  const config = loadConfig(undefined, {}, { dataDir, port: 0, cliConfigPath, logLevel: 'silent', probeIntervalMs: 60_000, ...overrides });
  const server = await startServer(config, ...(logger ? [logger] : []));
  const token = readToken(cliConfigPath);
  const pin = readPin(cliConfigPath);
  return {
    server, config, dataDir, scratchDir, token,
    api: new ApiClient(server.url, token, pin ? pinnedFetch(pin) : fetch),
    close: async () => {
      await server.stop();
      removeTempDir(dataDir);
      removeTempDir(scratchDir);
    },
  };
}

// ---- the real built server as a child process (recovery tests) ----

const spawned = new Set<SpawnedServer>();

/** How a spawned server ended. */
export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A `node dist/main.js serve` child process this test started. */
export interface SpawnedServer {
  readonly pid: number;
  readonly url: string;
  readonly dataDir: string;
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitStatus>;
  /** True once the process exited. */
  hasExited(): boolean;
  /** Everything the process wrote to stdout and stderr so far (for failure messages). */
  output(): string;
  /** kill -9 (only this PID), then waits for the exit. */
  kill9(): Promise<ExitStatus>;
  /** SIGTERM (graceful drain), SIGKILL after `graceMs`; waits for the exit. */
  stop(graceMs?: number): Promise<ExitStatus>;
}

/** Options for spawnServer. */
export interface SpawnOptions {
  readonly dataDir: string;
  /** Store URL; default SQLite in the data dir. */
  readonly databaseUrl?: string;
  /** STOWAGE_FAILPOINTS, e.g. `volume.create/provision:after=kill`. */
  readonly failpoints?: string;
  /** Extra STOWAGE_* variables. */
  readonly env?: Readonly<Record<string, string>>;
  /** How long to wait for /healthz (default 60 s). */
  readonly readyTimeoutMs?: number;
  /** Arguments after `serve`, e.g. `['--config', file]`. */
  readonly args?: readonly string[];
  /** Address and fixed port to listen on (agents in lab namespaces need one URL across restarts); default a free loopback port. */
  readonly listen?: { readonly host: string; readonly port: number };
}

/** Path of the CLI config (URL + token) spawned servers write in their data dir. */
export function cliConfigPathOf(dataDir: string): string {
  return join(dataDir, 'cli.json');
}

/** Path of the file `pause`/`kill` failpoints append their names to. */
export function failpointsReachedPath(dataDir: string): string {
  return join(dataDir, 'failpoints.reached');
}

/** Names the server's failpoints have recorded as reached so far. */
export function reachedFailpoints(dataDir: string): string[] {
  const file = failpointsReachedPath(dataDir);
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

/**
 * Spawns the real built server (`node dist/main.js serve`) on a free port with a short operation
 * lease, and waits until /healthz answers. Retries on another port if the first one was taken.
 */
export async function spawnServer(opts: SpawnOptions): Promise<SpawnedServer> {
  const problems: string[] = [];
  // A fixed port cannot be retried elsewhere: one attempt.
  for (let attempt = 0; attempt < (opts.listen ? 1 : 3); attempt++) {
    const port = opts.listen?.port ?? await freeTcpPort();
    const s = launch(opts, port);
    try {
      await waitForHealthy(s, opts.readyTimeoutMs ?? 60_000);
      return s;
    } catch (err) {
      problems.push(`${err instanceof Error ? err.message : String(err)}\n${s.output()}`);
      if (!s.hasExited()) await s.kill9();
      // Retry on another port when the port was taken, and when something outside this test sent the
      // starting server a SIGTERM (seen rarely under heavy parallel load with fast PID reuse; the server
      // itself never raises SIGTERM, and nothing in this helper sends one before the server is ready).
      const externalTerm = (await s.exited).signal === 'SIGTERM';
      if (externalTerm) console.warn(`stowage serve (pid ${String(s.pid)}) got a SIGTERM it was not sent by this test while starting; retrying`);
      if (!/EADDRINUSE/.test(s.output()) && !externalTerm) break;
    }
  }
  throw new Error(`stowage serve did not start:\n${problems.join('\n---\n')}`);
}

function launch(opts: SpawnOptions, port: number): SpawnedServer {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: opts.dataDir,
    STOWAGE_DATA_DIR: opts.dataDir,
    STOWAGE_HOST: opts.listen?.host ?? '127.0.0.1',
    // A lab address would get HTTPS (tls auto); these tests' clients speak plain HTTP (TLS and pinning: test/cli/tls-pinning.test.ts).
    ...(opts.listen ? { STOWAGE_TLS: 'off' } : {}),
    STOWAGE_PORT: String(port),
    STOWAGE_CLI_CONFIG: cliConfigPathOf(opts.dataDir),
    STOWAGE_LOG_LEVEL: 'warn',
    // Lease 1 s, poll 100 ms, retry 50 ms so every kill -9 case resumes in about a second (probes kept out of the way); twin on the shipped timings: test/defaults/replica-lease.ts.
    STOWAGE_OPERATION_LEASE_MS: '1000',
    STOWAGE_OPERATION_POLL_MS: '100',
    STOWAGE_PROBE_INTERVAL_MS: '600000',
    STOWAGE_RETRY_BASE_MS: '50',
    ...(opts.databaseUrl !== undefined ? { STOWAGE_DATABASE_URL: opts.databaseUrl } : {}),
    ...(opts.failpoints !== undefined ? { STOWAGE_FAILPOINTS: opts.failpoints } : {}),
    ...(opts.env ?? {}),
  };
  const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'main.js'), 'serve', ...(opts.args ?? [])], { cwd: opts.dataDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not spawn node dist/main.js serve');
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
  let exitStatus: ExitStatus | null = null;
  const exited = new Promise<ExitStatus>((res) => {
    child.once('exit', (code, signal) => {
      exitStatus = { code, signal };
      res(exitStatus);
    });
  });
  const s: SpawnedServer = {
    pid,
    url: `http://${opts.listen?.host ?? '127.0.0.1'}:${String(port)}`,
    dataDir: opts.dataDir,
    child,
    exited,
    hasExited: () => exitStatus !== null,
    output: () => out,
    kill9: async () => {
      if (exitStatus === null) process.kill(pid, 'SIGKILL');
      return exited;
    },
    stop: async (graceMs = 15_000) => {
      if (exitStatus === null) process.kill(pid, 'SIGTERM');
      const timer = setTimeout(() => { if (exitStatus === null) process.kill(pid, 'SIGKILL'); }, graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  spawned.add(s);
  void exited.then(() => spawned.delete(s));
  return s;
}

async function waitForHealthy(s: SpawnedServer, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (s.hasExited()) throw new Error(`server exited before it was ready (${JSON.stringify(await s.exited)})`);
    try {
      const res = await fetch(`${s.url}/healthz`, { signal: AbortSignal.timeout(2000) });
      // Another process may have taken the port between freeTcpPort and our listen: only our answer counts.
      if (res.ok && listensOn(s.pid, new URL(s.url).port)) return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new Error(`server did not answer /healthz within ${String(timeoutMs)} ms`);
}

/** True when process `pid` holds the listening TCP socket on `port` (read from /proc). */
export function listensOn(pid: number, port: string): boolean {
  const hexPort = Number(port).toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(table)) continue;
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is f[1] (ADDR:PORT), st is f[3] (0A = LISTEN), inode is f[9].
      if (f[1]?.endsWith(`:${hexPort}`) && f[3] === '0A' && f[9] !== undefined) inodes.add(f[9]);
    }
  }
  if (inodes.size === 0) return false;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${String(pid)}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${String(pid)}/fd/${fd}`));
      if (m?.[1] !== undefined && inodes.has(m[1])) return true;
    } catch {
      // fd closed meanwhile
    }
  }
  return false;
}

/** kill -9 every server this process spawned that is still running (for afterEach). */
export async function killAllSpawned(): Promise<void> {
  await Promise.all([...spawned].map((s) => s.kill9()));
}

/** An API client for a spawned server, with the token from its data dir's CLI config. */
export function clientFor(s: SpawnedServer): ApiClient {
  return new ApiClient(s.url, readToken(cliConfigPathOf(s.dataDir)));
}

// ---- building dist/ for the spawned server ----

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtimeMs(full));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return newest;
}

/**
 * Runs `npm run build` when dist/main.js is missing or older than any source file, under a lock
 * file so parallel test files do not build at the same time.
 */
export async function ensureBuilt(): Promise<void> {
  const lock = join(REPO_ROOT, 'dist', '.test-build.lock');
  const distMain = join(REPO_ROOT, 'dist', 'main.js');
  const stale = (): boolean => !existsSync(distMain) || statSync(distMain).mtimeMs < newestMtimeMs(join(REPO_ROOT, 'src'));
  if (!stale()) return;
  mkdirSync(join(REPO_ROOT, 'dist'), { recursive: true });
  const deadline = Date.now() + 300_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    // A lock older than the longest build was left by a crashed run.
    if (Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now()) > 300_000) rmSync(lock, { recursive: true, force: true });
    if (Date.now() > deadline) throw new Error(`build lock ${lock} held too long`);
    await sleep(200);
  }
  try {
    if (!stale()) return;
    const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 300_000 });
    // tsc still emits on type errors (the typecheck reports those); only a build that wrote nothing fails here.
    if (r.status !== 0 && stale()) throw new Error(`npm run build failed:\n${r.stdout}\n${r.stderr}`);
    if (r.status !== 0) console.warn(`npm run build reported errors (dist was still emitted):\n${r.stdout}${r.stderr}`);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

// ---- polling ----

/** Sleeps `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Calls `probe` until it returns something other than undefined, or throws after `timeoutMs`
 * with `what` and the last value seen (no timing is asserted: the limit is generous).
 */
export async function pollUntil<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${String(timeoutMs)} ms waiting for ${what}${lastError instanceof Error ? `: ${lastError.message}` : ''}`);
    }
    await sleep(intervalMs);
  }
}
