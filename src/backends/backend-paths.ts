import { realpathSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { StowageError } from '../core/errors.js';
import type { BackendReport } from '../drivers/sdk/types.js';

/** Another backend's directory, for the overlap check. */
export interface BackendDir {
  readonly id: string;
  readonly name: string;
  readonly dir: string;
}

/** `dir` with symlinks resolved where it exists (so a link cannot hide an overlap), else as given. */
function realDir(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return path.resolve(dir);
  }
}

/** How `dir` relates to `other`: the same directory, inside it, enclosing it, or unrelated (null). */
function relation(dir: string, other: string): 'is' | 'is inside' | 'contains' | null {
  if (dir === other) return 'is';
  if (dir.startsWith(`${other}/`)) return 'is inside';
  if (other.startsWith(`${dir}/`)) return 'contains';
  return null;
}

/**
 * Refuses (409 BACKEND_PATH_OVERLAP) a backend whose directory is, is inside, or contains another
 * backend's directory or the data dir: two backends on one set of files would each list, sweep and
 * count the other's. The data dir's own `volumes/` (the default backend's home) is the one
 * directory under the data dir a backend may use.
 */
export function assertNoOverlap(name: string, dir: string, others: readonly BackendDir[], dataDir: string | null): void {
  const mine = realDir(dir);
  for (const o of others) {
    const rel = relation(mine, realDir(o.dir));
    if (rel) {
      throw new StowageError('BACKEND_PATH_OVERLAP', `backend ${name}'s directory ${dir} ${rel === 'is' ? 'is the directory' : `${rel} the directory`} ${o.dir} of backend ${o.name}; backends must not share files`, { path: dir, backend: o.name, backendId: o.id, otherPath: o.dir });
    }
  }
  if (dataDir === null) return; // a storage node's backend: the server's data dir is on another machine
  const data = realDir(dataDir);
  const rel = relation(mine, data);
  if (rel && mine !== path.join(data, 'volumes')) {
    throw new StowageError('BACKEND_PATH_OVERLAP', `backend ${name}'s directory ${dir} ${rel === 'is' ? 'is' : rel} the server's data dir ${dataDir}, which holds the store and keys (only its volumes/ may hold a backend)`, { path: dir, dataDir });
  }
}

/** An id of the filesystem `dir` is on (its device number), undefined when it cannot be read. */
export async function filesystemOf(dir: string): Promise<string | undefined> {
  try {
    return String((await stat(dir)).dev);
  } catch {
    return undefined;
  }
}

/**
 * The share of a filesystem's capacity one of `sharers` backends on it may count: each backend's
 * probe sees the whole filesystem, so without this n backends on one disk offer it n times over.
 * The filesystem is split evenly (total, free and used each divided by n), so the pool's totals
 * add up to the disk's, whatever backend an operator puts first.
 */
export function shareOf(report: BackendReport, sharers: number): BackendReport {
  if (sharers <= 1) return report;
  const part = (bytes: number): number => Math.floor(bytes / sharers);
  return { ...report, totalBytes: part(report.totalBytes), freeBytes: part(report.freeBytes), usedBytes: part(report.usedBytes) };
}
