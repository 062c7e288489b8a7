import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Every file under `root` (and `root` itself) whose mode is not private: files must be 0600 and
 * directories 0700. Returns `path mode` lines, empty when all is well (symlinks are not followed).
 */
export async function notPrivate(root: string): Promise<string[]> {
  const bad: string[] = [];
  const visit = async (p: string): Promise<void> => {
    const st = await lstat(p);
    const mode = st.mode & 0o7777;
    if (st.isDirectory()) {
      if (mode !== 0o700) bad.push(`${p} ${mode.toString(8)}`);
      for (const name of await readdir(p)) await visit(join(p, name));
    } else if (st.isFile() && mode !== 0o600) {
      bad.push(`${p} ${mode.toString(8)}`);
    }
  };
  await visit(root);
  return bad;
}

/** The umasks every mode test runs under: the usual one and the most permissive. */
export const TEST_UMASKS = [0o022, 0o000] as const;

/**
 * Runs `fn` with this process's umask set to `mask` (child processes, such as qemu-img, cp and a
 * spawned server, inherit it), restoring the previous umask afterwards. Needs vitest's forks pool.
 */
export async function withUmask<T>(mask: number, fn: () => Promise<T>): Promise<T> {
  const previous = process.umask(mask);
  try {
    return await fn();
  } finally {
    process.umask(previous);
  }
}
