import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { PRIVATE_FILE_MODE } from './private-files.js';

/**
 * Writes `data` to `<dir>/<name>` so that once this resolves the file is on disk whole, whatever
 * happens next (kill -9, power loss): it is written to a temporary file (0600 whatever the umask)
 * and fsynced, renamed into place, and the directory fsynced so the rename itself is durable. A
 * reader never sees a half-written file under `name`; an existing file of that name is replaced
 * atomically. A crash before the rename leaves only the temporary file, which the next write of
 * the same name truncates. Returns the file's path.
 */
export async function writePrivateFileDurably(dir: string, name: string, data: string): Promise<string> {
  const path = join(dir, name);
  const tmp = join(dir, `.${name}.tmp`);
  const fh = await open(tmp, 'w', PRIVATE_FILE_MODE);
  try {
    await fh.chmod(PRIVATE_FILE_MODE);
    await fh.writeFile(data, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(dir);
  return path;
}

/** Fsyncs a directory, making the creation, rename or removal of its entries durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
