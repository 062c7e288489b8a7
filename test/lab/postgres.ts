import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { SpawnCommandRunner, type CommandRunner } from '../../src/system/command-runner.js';
import { freeTcpPort } from './ports.js';
import { newRunId, newState, saveState, stateFilePath } from './state.js';
import { teardownState } from './teardown.js';

/** Options for a private PostgreSQL server. */
export interface PostgresOptions {
  /** Keep the server when its creator exits (used by `npm run lab -- up`); default false. */
  readonly persistent?: boolean;
  /** Runner for external programs (default SpawnCommandRunner). */
  readonly runner?: CommandRunner;
}

/** A running private PostgreSQL server on 127.0.0.1 with trust auth for user `app`. */
export interface PostgresServer {
  /** `postgres://app@127.0.0.1:<port>/stowage`. */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** Path of this server's lab state file. */
  readonly stateFile: string;
  /** Creates database `name` and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

const DB_NAME_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** The bin directory of the newest installed PostgreSQL (`STOWAGE_PG_BIN` overrides). */
export function findPostgresBinDir(): string {
  const override = process.env.STOWAGE_PG_BIN;
  if (override !== undefined && override !== '') return override;
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base).filter((v) => /^\d+$/.test(v) && existsSync(join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a))
    : [];
  const v = versions[0];
  if (v === undefined) throw new Error(`no PostgreSQL found in ${base}/<version>/bin (run scripts/install-deps.sh)`);
  return join(base, v, 'bin');
}

/** Replaces the database part of a postgres URL. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Creates database `name` on the server at `baseUrl` and returns the new database's URL. */
export async function createDatabase(baseUrl: string, name: string): Promise<string> {
  if (!DB_NAME_RE.test(name)) throw new Error(`bad database name ${JSON.stringify(name)}: use [a-z_][a-z0-9_]*`);
  const client = new pg.Client({ connectionString: withDatabase(baseUrl, 'postgres') });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
  return withDatabase(baseUrl, name);
}

async function postgresIds(runner: CommandRunner): Promise<{ uid: number; gid: number }> {
  const uid = Number((await runner.run('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await runner.run('id', ['-g', 'postgres'])).stdout.trim());
  return { uid, gid };
}

/**
 * Starts a throwaway PostgreSQL: initdb into a private temp dir (as user `postgres` when running as
 * root), pg_ctl start on a free port on 127.0.0.1 with fsync off, and creates database `stowage`.
 */
export async function startPostgres(opts: PostgresOptions = {}): Promise<PostgresServer> {
  const runner = opts.runner ?? new SpawnCommandRunner();
  const binDir = findPostgresBinDir();
  const asRoot = process.getuid?.() === 0;
  const runId = `pg-${newRunId((id) => existsSync(join(tmpdir(), `stowage-pg-${id}`)))}`;
  const state = newState('postgres', runId, opts.persistent ?? false);
  const runDir = join(tmpdir(), `stowage-${runId}`);
  const dataDir = join(runDir, 'data');
  mkdirSync(runDir, { mode: 0o700 });
  state.runDir = runDir;
  saveState(state);
  const pgRun = (bin: string, args: readonly string[], timeoutMs: number): Promise<unknown> =>
    asRoot
      ? runner.run('runuser', ['-u', 'postgres', '--', join(binDir, bin), ...args], { timeoutMs })
      : runner.run(join(binDir, bin), args, { timeoutMs });
  try {
    if (asRoot) {
      const { uid, gid } = await postgresIds(runner);
      chownSync(runDir, uid, gid);
    }
    await pgRun('initdb', ['-D', dataDir, '-U', 'app', '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync'], 120_000);
    let port = 0;
    const problems: string[] = [];
    for (let attempt = 0; attempt < 4 && port === 0; attempt++) {
      const candidate = await freeTcpPort('127.0.0.1');
      state.postgres = { binDir, dataDir, port: candidate };
      saveState(state);
      const serverOpts = [
        `-p ${String(candidate)}`,
        `-k ${runDir}`,
        '-c listen_addresses=127.0.0.1',
        '-c fsync=off',
        '-c synchronous_commit=off',
        '-c full_page_writes=off',
        '-c max_connections=300',
      ].join(' ');
      try {
        await pgRun('pg_ctl', ['-D', dataDir, '-l', join(runDir, 'postgres.log'), '-w', '-t', '60', '-o', serverOpts, 'start'], 90_000);
        port = candidate;
      } catch (err) {
        problems.push(err instanceof Error ? err.message : String(err));
      }
    }
    if (port === 0) throw new Error(`PostgreSQL did not start:\n${problems.join('\n')}`);
    const pid = Number((readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '').trim());
    state.processes.push({ pid, cmdlineMatch: dataDir });
    const baseUrl = `postgres://app@127.0.0.1:${String(port)}/postgres`;
    const url = await createDatabase(baseUrl, 'stowage');
    state.info = { url, port, dataDir, pid };
    saveState(state);
    let stopped = false;
    return {
      url,
      port,
      dataDir,
      stateFile: stateFilePath(runId),
      createDatabase: (name: string) => createDatabase(url, name),
      stop: async () => {
        if (stopped) return;
        stopped = true;
        const errors = await teardownState(state, runner);
        if (errors.length > 0) throw new Error(`postgres ${runId} teardown failed:\n${errors.join('\n')}`);
      },
    };
  } catch (err) {
    const errors = await teardownState(state, runner);
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(errors.length > 0 ? `${msg}\n(teardown also failed:\n${errors.join('\n')})` : msg, { cause: err });
  }
}
