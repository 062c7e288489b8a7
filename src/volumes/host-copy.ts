import { open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { VolumeFormat } from '../core/states.js';
import type { StepContext } from '../operations/handler.js';
import type { CommandRunner } from '../system/command-runner.js';
import { QemuImg } from '../system/qemu-img.js';

/** Host copies of large volumes may take long; still bounded so a hung qemu-img cannot wedge a worker. */
const HOST_COPY_TIMEOUT_MS = 6 * 3600_000;

/** One side of a host copy: an image file and its format. */
export interface CopyEnd {
  readonly path: string;
  readonly format: VolumeFormat;
}

/**
 * Copies `from` into the volume at `to` with `qemu-img convert`, fenced by the operation's lease.
 * The copy goes to a file private to this attempt (named by its lease epoch) and is renamed over
 * `to` only inside a write that proves the lease is still ours. A worker that was frozen together
 * with its qemu-img (SIGSTOP of the process group) may see the child resume before it notices the
 * lost lease: the child then writes only into its own attempt's file, which the next attempt has
 * already unlinked, so it never touches the volume another worker finished.
 */
export async function hostCopy(runner: CommandRunner, ctx: StepContext, from: CopyEnd, to: CopyEnd, sizeBytes: number): Promise<void> {
  const dir = dirname(to.path);
  const prefix = `.${basename(to.path)}.copy-e`;
  const mine = join(dir, `${prefix}${String(ctx.epoch)}`);
  // Leftovers of earlier attempts (fenced or crashed): a stale child may still hold one open, and
  // unlinking it sends whatever it still writes nowhere.
  for (const name of await readdir(dir)) {
    if (name.startsWith(prefix) && join(dir, name) !== mine) await unlinkQuietly(join(dir, name));
  }
  let published = false;
  try {
    await unlinkQuietly(mine);
    // Created 0600 first: qemu-img keeps the mode of a file that exists.
    await (await open(mine, 'wx', 0o600)).close();
    const qemu = new QemuImg(runner);
    await qemu.create(mine, to.format, sizeBytes, ctx.signal);
    await qemu.convert(from.path, from.format, mine, to.format, ctx.signal, {
      targetExists: true,
      timeoutMs: HOST_COPY_TIMEOUT_MS,
      onProgress: (fraction) => { ctx.progress(fraction); },
    });
    await syncFile(mine, 0o600);
    // Moved into place only under the lease: the row lock held by this write keeps a takeover out
    // until the rename is done.
    await ctx.write(async () => {
      await rename(mine, to.path);
      published = true;
    });
    await syncFile(dir);
  } finally {
    if (!published) await unlinkQuietly(mine);
  }
}

/** Flushes a file (or directory) to disk, first setting its mode when given. */
async function syncFile(path: string, mode?: number): Promise<void> {
  const fh = await open(path, 'r');
  try {
    if (mode !== undefined) await fh.chmod(mode);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function unlinkQuietly(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
