import { chmod, link, open, rename, stat, unlink } from 'node:fs/promises';
import { hasErrno } from './dir-errors.js';

/** Mode of every image and temp file: a volume's data is readable and writable by this user only. */
export const PRIVATE_FILE_MODE = 0o600;

/** Creates a new sparse file of `sizeBytes` (fails if `file` exists) and flushes it to disk. */
export async function createSparseFile(file: string, sizeBytes: number): Promise<void> {
  const fh = await open(file, 'wx', PRIVATE_FILE_MODE);
  try {
    await fh.truncate(sizeBytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Flushes a directory's entries (after link/rename/unlink) so the change survives a power cut (the one in system). */
export { fsyncDir as syncDir } from '../../system/durable-write.js';

/**
 * Publishes a finished temp file under its final name without ever replacing an existing file:
 * hard-link then unlink the temp name. Returns false when `final` already exists (someone else won).
 */
export async function publishNoClobber(temp: string, final: string): Promise<boolean> {
  try {
    await link(temp, final);
  } catch (err) {
    if (hasErrno(err, 'EEXIST')) return false;
    if (!hasErrno(err, 'EPERM') && !hasErrno(err, 'ENOTSUP') && !hasErrno(err, 'EOPNOTSUPP')) throw err;
    // Filesystems without hard links: fall back to check-then-rename (a narrow race, never a half file).
    if (await exists(final)) return false;
    await rename(temp, final);
    return true;
  }
  await unlinkIfExists(temp);
  return true;
}

/** Deletes `file`; a file already gone is success. Returns whether it existed. */
export async function unlinkIfExists(file: string): Promise<boolean> {
  try {
    await unlink(file);
    return true;
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

/** True when `file` exists (any type). */
export async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

/** True when both paths exist and name the same inode (a hard link). */
export async function sameInode(a: string, b: string): Promise<boolean> {
  try {
    const [sa, sb] = await Promise.all([stat(a), stat(b)]);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

/**
 * Runs `write`, which has an external tool (qemu-img, cp) write `file`, so that the file is 0600
 * throughout: it is created empty with that mode first (the tools write into the existing inode
 * and keep its mode, so no copy of the data is ever readable by others) and set to 0600 again
 * afterwards, because qemu-img and cp choose their own mode, minus the umask, for files they create.
 */
export async function writePrivately(file: string, write: () => Promise<void>): Promise<void> {
  const fh = await open(file, 'wx', PRIVATE_FILE_MODE);
  await fh.close();
  await write();
  await chmod(file, PRIVATE_FILE_MODE);
}
