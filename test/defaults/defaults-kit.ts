import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../src/config/config.js';
import type { TgtTarget } from '../../src/drivers/tgt/tgtadm-show.js';
import { ApiClient, REPO_ROOT, pollUntil, readToken } from '../helpers/server.js';
import type { LabHost } from '../lab/lab.js';
import { startAgent, type AgentProcess } from '../e2e-hosts/hosts-kit.js';

/**
 * The defaults tier runs what a user sees on the timings `src/config/config.ts` ships: it starts
 * the real `stowage serve` and `stowage agent` with nothing but an address, port 0, a temp data
 * dir, a database URL and (for crash tests) failpoints. Every wait is a poll with a deadline
 * derived from the shipped default, and every observed figure is printed for the notes; there
 * is no timing assertion, because what the defaults make slow is a design question, not a test
 * failure.
 */

/** The shipped configuration (defaults only, no file, no environment). */
export const SHIPPED: Config = loadConfig(undefined, {});

/** The settings that decide how fast anything heals, notices or retries; none may be set here. */
const TIMINGS = [
  'probeIntervalMs', 'reconcileIntervalMs', 'exportWatchMs', 'operationLeaseMs', 'operationPollMs', 'stepAttempts', 'retryBaseMs',
  'agentHeartbeatMs', 'hostDownAfterMs', 'connectTimeoutMs', 'disconnectTimeoutMs',
] as const satisfies readonly (keyof Config)[];

/** The only `STOWAGE_*` variables a defaults-tier server gets: where it lives, not how fast it is. */
const ALLOWED_ENV = new Set(['STOWAGE_HOST', 'STOWAGE_PORT', 'STOWAGE_DATA_DIR', 'STOWAGE_DATABASE_URL', 'STOWAGE_CLI_CONFIG', 'STOWAGE_FAILPOINTS', 'STOWAGE_TLS']);

/** Throws unless `env` leaves every timing at its shipped default (a guard against this kit drifting). */
export function assertShippedTimings(env: Readonly<Record<string, string | undefined>>): void {
  const extra = Object.keys(env).filter((k) => k.startsWith('STOWAGE_') && !ALLOWED_ENV.has(k));
  if (extra.length > 0) throw new Error(`the defaults tier may not set ${extra.join(', ')}`);
  const cfg = loadConfig(undefined, env);
  const changed = TIMINGS.filter((k) => cfg[k] !== SHIPPED[k]);
  if (changed.length > 0) throw new Error(`the defaults tier changed shipped timings: ${changed.join(', ')}`);
}

/** Prints one observed figure in a form easy to grep from the test output (`[defaults] …`). */
export function report(what: string, ms: number, note = ''): void {
  console.log(`[defaults] ${what}: ${(ms / 1000).toFixed(1)} s${note ? ` (${note})` : ''}`);
}

/** A `stowage serve` this test started, on the shipped timings. */
export interface DefaultServer {
  readonly pid: number;
  readonly url: string;
  readonly api: ApiClient;
  readonly token: string;
  /** Everything the process printed (for failure messages). */
  output(): string;
  hasExited(): boolean;
  /** kill -9 of this PID only; waits for the exit. */
  kill9(): Promise<void>;
}

/** Where and how a defaults-tier server runs (nothing here changes a timing). */
export interface DefaultServerOptions {
  readonly dataDir: string;
  /** Address to listen on (a lab bridge address when agents must reach it); default 127.0.0.1. */
  readonly host?: string;
  readonly databaseUrl?: string;
  /** STOWAGE_FAILPOINTS, e.g. `volume.create/provision:after=pause`. */
  readonly failpoints?: string;
  /** CLI config with the admin token; default `<dataDir>/cli.json` (replicas share the first one's). */
  readonly cliConfigPath?: string;
}

/**
 * Spawns `node dist/main.js serve` on port 0 at the default log level and learns its address from
 * the "stowage is serving" log line, so no port is bound, released and reused. Needs dist/ built.
 */
export async function startDefaultServer(o: DefaultServerOptions): Promise<DefaultServer> {
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  const cliConfigPath = o.cliConfigPath ?? join(o.dataDir, 'cli.json');
  const stowageEnv: Record<string, string> = {
    STOWAGE_HOST: o.host ?? '127.0.0.1',
    STOWAGE_PORT: '0',
    STOWAGE_DATA_DIR: o.dataDir,
    STOWAGE_CLI_CONFIG: cliConfigPath,
    // On a lab address the API would serve HTTPS (tls auto); this tier's clients speak plain HTTP
    // (TLS and pinning: test/cli/tls-pinning.test.ts). Agents still enroll with their own credential.
    ...(o.host !== undefined && o.host !== '127.0.0.1' ? { STOWAGE_TLS: 'off' } : {}),
    ...(o.databaseUrl !== undefined ? { STOWAGE_DATABASE_URL: o.databaseUrl } : {}),
    ...(o.failpoints !== undefined ? { STOWAGE_FAILPOINTS: o.failpoints } : {}),
  };
  assertShippedTimings(stowageEnv);
  const env = { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: o.dataDir, ...stowageEnv };
  const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'main.js'), 'serve'], { cwd: o.dataDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not spawn node dist/main.js serve');
  let out = '';
  let url: string | undefined;
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    url ??= servingUrl(out);
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
  let done = false;
  const exited = new Promise<void>((res) => child.once('exit', () => { done = true; res(); }));
  const kill9 = async (): Promise<void> => {
    if (!done) process.kill(pid, 'SIGKILL');
    await exited;
  };
  try {
    const base = await pollUntil('stowage serve to say where it listens', () => {
      if (done) throw new Error(`stowage serve exited at start:\n${out}`);
      return Promise.resolve(url);
    }, 60_000, 50);
    await pollUntil(`${base}/healthz`, async () => ((await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) })).ok ? true : undefined), 30_000, 50);
    const token = await pollUntil('the admin token', () => Promise.resolve(existsSync(cliConfigPath) ? readToken(cliConfigPath) : undefined), 10_000);
    return { pid, url: base, token, api: new ApiClient(base, token), output: () => out, hasExited: () => done, kill9 };
  } catch (err) {
    await kill9();
    throw err;
  }
}

/** The URL of pino's "stowage is serving" line, once it has been printed. */
function servingUrl(out: string): string | undefined {
  for (const line of out.split('\n')) {
    if (!line.includes('stowage is serving')) continue;
    try {
      const rec = JSON.parse(line) as { url?: unknown };
      if (typeof rec.url === 'string') return rec.url;
    } catch {
      // a partial line: wait for the rest
    }
  }
  return undefined;
}

/** A `stowage agent` this test started inside a lab host. */
export type DefaultAgent = AgentProcess;

/** Starts the real agent in `o.host`'s namespace with no timing flag (hosts-kit's startAgent on shipped timings). */
export function startDefaultAgent(o: { host: LabHost; apiUrl: string; token: string; vmDir: string; logDir: string }): DefaultAgent {
  return startAgent({ ...o, shippedTimings: true });
}

/** Polls `probe` like pollUntil and also returns how long it took from `since` (Date.now() ms). */
export async function timeUntil<T>(what: string, since: number, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 250): Promise<{ value: T; ms: number }> {
  const value = await pollUntil(what, probe, timeoutMs, intervalMs);
  return { value, ms: Date.now() - since };
}

/** The export of target `iqn` as a host depends on it: ACL, CHAP accounts and LUN 1. */
export function exportOf(targets: readonly TgtTarget[], iqn: string): unknown {
  const t = targets.find((x) => x.iqn === iqn);
  const lun = t?.luns.find((l) => l.lun === 1);
  return {
    acl: [...(t?.aclAddresses ?? [])].sort(),
    accounts: [...(t?.accounts ?? [])].sort(),
    lun: lun ? { backingPath: lun.backingPath, readonly: lun.readonly } : null,
  };
}
