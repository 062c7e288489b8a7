import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';

/** Mode of every directory Stowage keeps state in: only the server's user may list or enter it. */
export const PRIVATE_DIR_MODE = 0o700;

/** Mode of every file Stowage keeps state in (the store, keys, volume images). */
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Creates `dir` (and missing parents) 0700 and sets `dir` itself to 0700 if it already existed:
 * `mkdir`'s mode is filtered by the umask only for directories it creates, and a data dir made by
 * an earlier version, or by hand, may be 0755. Parents that already existed are left as they are.
 */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  chmodSync(dir, PRIVATE_DIR_MODE);
}

/**
 * Makes sure `file` exists and is 0600 before anyone writes to it (an existing file keeps its
 * content). SQLite creates its -wal and -shm files with the database file's mode, so a database
 * created this way keeps its journal private too.
 */
export function ensurePrivateFile(file: string): void {
  closeSync(openSync(file, 'a', PRIVATE_FILE_MODE));
  chmodSync(file, PRIVATE_FILE_MODE);
}

/** Sets `file` to 0600 when it exists (files left by an earlier version); a missing file is fine. */
export function makePrivateIfPresent(file: string): void {
  try {
    chmodSync(file, PRIVATE_FILE_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
