import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { freshPostgresUrl } from '../helpers/pg.js';
import { makeTempDir, removeTempDir } from '../helpers/server.js';

// The kill -9 matrix itself is generated from the registered kinds: matrix-kit.ts and its tiers.

/** Where one case keeps its state: data dir (SQLite store, `local` backend), database, backend dirs. */
export interface Run {
  readonly dataDir: string;
  readonly databaseUrl: string | undefined;
  readonly localDir: string;
  readonly flakyDir: string;
}

/** Temp dirs of the current test, for afterEach. */
const current: { dirs: string[] } = { dirs: [] };

/** Removes the temp dirs of the test that just ran (servers are killed by killAllSpawned). */
export function cleanupRuns(): void {
  for (const d of current.dirs.splice(0)) removeTempDir(d);
}

/** A fresh data dir (removed by cleanupRuns) and, on PostgreSQL, a fresh database. */
export async function newRun(dialect: 'sqlite' | 'postgres'): Promise<Run> {
  const dataDir = makeTempDir('stowage-recovery-');
  // The flaky backend's directory is beside the data dir: no backend may keep files inside it.
  const flakyRoot = makeTempDir('stowage-recovery-flaky-');
  current.dirs.push(dataDir, flakyRoot);
  return {
    dataDir,
    databaseUrl: dialect === 'postgres' ? await freshPostgresUrl('recovery') : undefined,
    localDir: join(dataDir, 'volumes'),
    flakyDir: join(flakyRoot, 'flaky'),
  };
}

/** The directory holds exactly `<id>.raw` for each volume, each file exactly its recorded size. */
export function assertDirMatches(dir: string, volumes: readonly Volume[]): void {
  const files = readdirSync(dir).sort();
  expect(files).toEqual(volumes.map((v) => `${v.id}.raw`).sort());
  for (const v of volumes) expect(statSync(join(dir, `${v.id}.raw`)).size, v.name).toBe(v.sizeBytes);
}
