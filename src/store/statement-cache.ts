import type { SqliteDatabase, SqliteStatement } from 'kysely';

/** Distinct SQL texts kept prepared; the server issues a few hundred shapes, each reused endlessly. */
const DEFAULT_CAPACITY = 512;

/**
 * The SQLite handle Kysely is given: `prepare` answers a statement already prepared for the same SQL
 * text (least recently used ones dropped beyond `capacity`). Kysely prepares every query it runs,
 * and preparing costs more than running most of ours (a sixth of the server's CPU under a create
 * load). Safe because better-sqlite3 runs a statement to completion synchronously and Kysely only
 * iterates one for `stream()`, which no code here uses; a statement whose schema changed is
 * re-prepared by SQLite itself.
 */
export function cachingStatements(raw: SqliteDatabase, capacity = DEFAULT_CAPACITY): SqliteDatabase {
  const cache = new Map<string, SqliteStatement>();
  return {
    close: () => { cache.clear(); raw.close(); },
    prepare: (sql: string): SqliteStatement => {
      const hit = cache.get(sql);
      if (hit) {
        cache.delete(sql);
        cache.set(sql, hit);
        return hit;
      }
      const stmt = raw.prepare(sql);
      cache.set(sql, stmt);
      if (cache.size > capacity) cache.delete(cache.keys().next().value as string);
      return stmt;
    },
  };
}
