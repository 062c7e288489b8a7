import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, sql, type Transaction } from 'kysely';
import { cachingStatements } from './statement-cache.js';
import { GuardedSqliteDialect } from './sqlite-guard.js';
import pg from 'pg';
import { StowageError } from '../core/errors.js';
import { ensurePrivateDir, ensurePrivateFile, makePrivateIfPresent } from '../system/private-files.js';
import { MIGRATIONS, type MigrationDialect } from './migrations/index.js';
import type { Database } from './schema.js';

/** A connection to SQL, either in or out of a transaction; repositories accept both. */
export type Executor = Kysely<Database> | Transaction<Database>;

/** An open store: the Kysely handle, its dialect, and lifecycle. */
export interface Store {
  readonly db: Kysely<Database>;
  readonly dialect: MigrationDialect;
  /** Runs `fn` in one transaction (serializable enough for our row locks; see repositories). */
  transaction<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

// bigint columns hold bytes; every size we store is far below 2^53, so numbers are exact.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v) => Number(v));

/**
 * Opens the store named by `url`: `sqlite:///abs/path.db`, `sqlite:relative.db`, `sqlite::memory:`
 * or `postgres://user@host:port/db`. Runs pending migrations before returning.
 */
export async function openStore(url: string, options: { sqliteAcquireTimeoutMs?: number } = {}): Promise<Store> {
  const store = url.startsWith('postgres://') || url.startsWith('postgresql://') ? openPostgres(url) : openSqlite(url, options.sqliteAcquireTimeoutMs ?? SQLITE_ACQUIRE_TIMEOUT_MS);
  try {
    await migrate(store);
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

function sqlitePath(url: string): string {
  if (url === 'sqlite::memory:' || url === ':memory:') return ':memory:';
  if (url.startsWith('sqlite://')) return url.slice('sqlite://'.length);
  if (url.startsWith('sqlite:')) return url.slice('sqlite:'.length);
  throw new StowageError('VALIDATION_FAILED', `unsupported database URL "${url}"; use sqlite:///path/to/file.db or postgres://user@host:port/db`, {});
}

/** No SQLite transaction of ours runs anywhere near this long; a wait this long is a deadlock. */
const SQLITE_ACQUIRE_TIMEOUT_MS = 30_000;

function openSqlite(url: string, acquireTimeoutMs: number): Store {
  const path = sqlitePath(url);
  if (path !== ':memory:') {
    // The database holds token hashes and sealed CHAP secrets: 0600 files in a 0700 directory,
    // whatever the umask (SQLite itself creates files 0644 minus the umask).
    ensurePrivateDir(dirname(path));
    ensurePrivateFile(path);
    makePrivateIfPresent(`${path}-wal`);
    makePrivateIfPresent(`${path}-shm`);
  }
  const raw = new SqliteDatabase(path);
  raw.pragma('journal_mode = WAL');
  raw.pragma('busy_timeout = 10000');
  raw.pragma('foreign_keys = ON');
  raw.pragma('synchronous = NORMAL');
  const db = new Kysely<Database>({ dialect: new GuardedSqliteDialect({ database: cachingStatements(raw) }, acquireTimeoutMs) });
  return {
    db,
    dialect: 'sqlite',
    transaction: (fn) => db.transaction().execute(fn),
    close: () => db.destroy(),
  };
}

function openPostgres(url: string): Store {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    dialect: 'postgres',
    transaction: (fn) => db.transaction().execute(fn),
    close: () => db.destroy(),
  };
}

const MIGRATION_LOCK_KEY = 0x5704a6e;

/** Applies pending migrations in order; on PostgreSQL under an advisory lock so replicas don't race. */
async function migrate(store: Store): Promise<void> {
  const db = store.db as unknown as Kysely<{ schema_migrations: { id: string; applied_at: string } }>;
  await db.transaction().execute(async (trx) => {
    if (store.dialect === 'postgres') await sql`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`.execute(trx);
    // Under the lock: CREATE TABLE IF NOT EXISTS is not safe against a concurrent create on PostgreSQL.
    await trx.schema.createTable('schema_migrations').ifNotExists()
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('applied_at', 'text', (c) => c.notNull())
      .execute();
    const done = new Set((await trx.selectFrom('schema_migrations').select('id').execute()).map((r) => r.id));
    for (const m of MIGRATIONS) {
      if (done.has(m.id)) continue;
      await m.up(trx as unknown as Kysely<unknown>, store.dialect);
      await trx.insertInto('schema_migrations').values({ id: m.id, applied_at: new Date().toISOString() }).execute();
    }
  });
}
