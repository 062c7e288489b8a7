/**
 * What the benchmarks that run the built server share: starting `node dist/main.js serve` on its
 * embedded defaults in a private data dir (STOWAGE_* settings from the bench's own environment
 * passed through, to measure a non-default one), its RSS, percentiles, and killing what they started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type Sqlite from 'better-sqlite3';
import { freeTcpPort } from '../test/lab/ports.js';

export const REPO = resolve(import.meta.dirname, '..');

/** The servers this process started; each still running is killed when the bench exits. */
export const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
});

/** The p-th percentile of `xs` (nearest rank). */
export function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

/** Inserts `values` into `table`, every other column NULL (columns read from the schema). */
export function inserter(db: Sqlite.Database, table: string): (values: Record<string, unknown>) => void {
  const cols = (db.pragma(`table_info(${table})`) as { name: string }[]).map((c) => c.name);
  const stmt = db.prepare(`INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((c) => `@${c}`).join(', ')})`);
  return (values) => { stmt.run(Object.fromEntries(cols.map((c) => [c, values[c] ?? null]))); };
}

/** A process's resident set, in MiB. */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${String(pid)}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/** STOWAGE_* settings in the bench's own environment (to measure a non-default setting); print them when any is given. */
export function serverOverrides(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[0].startsWith('STOWAGE_') && e[1] !== undefined));
}

export interface StartedServe {
  readonly url: URL;
  readonly token: string;
  readonly pid: number;
  /** The CLI config file the first start wrote (url and admin token). */
  readonly cliConfig: string;
}

/**
 * Starts `stowage serve` in `dataDir` on a free loopback port and waits for /healthz. `databaseUrl`
 * puts it on PostgreSQL; `profileDir` writes its CPU profile there (its stderr then goes to ours);
 * `cliConfig` is the CLI config file (a second replica of one store: the first's, which holds the token).
 */
export async function startServe(dataDir: string, opts: { databaseUrl?: string | undefined; profileDir?: string | undefined; cliConfig?: string | undefined } = {}): Promise<StartedServe> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const port = await freeTcpPort();
  const cli = opts.cliConfig ?? join(dataDir, 'cli.json');
  const prof = opts.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.profileDir}`] : [];
  const child = spawn(process.execPath, [...prof, join(REPO, 'dist', 'main.js'), 'serve'], {
    cwd: dataDir, stdio: ['ignore', process.env.BENCH_SERVER_LOG ? 'inherit' : 'ignore', opts.profileDir ? 'inherit' : 'pipe'],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dataDir, STOWAGE_DATA_DIR: dataDir, STOWAGE_PORT: String(port), STOWAGE_CLI_CONFIG: cli,
      ...serverOverrides(), ...(opts.databaseUrl ? { STOWAGE_DATABASE_URL: opts.databaseUrl } : {}),
    },
  });
  children.push(child);
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { err = (err + d).slice(-4000); });
  const url = new URL(`http://127.0.0.1:${String(port)}`);
  for (const deadline = Date.now() + 60_000; ;) {
    if (child.exitCode !== null) throw new Error(`stowage serve exited: ${err}`);
    if (Date.now() >= deadline) throw new Error(`stowage serve did not answer /healthz within 60 s: ${err}`);
    try {
      const r = await fetch(new URL('/healthz', url));
      if (r.ok) break;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  // Another replica may have written the first start's CLI config; every replica of one store answers the same token.
  const token = (JSON.parse(readFileSync(cli, 'utf8')) as { token: string }).token;
  return { url, token, pid: child.pid ?? 0, cliConfig: cli };
}
