import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { StowageError } from '../../core/errors.js';
import type { VolumeFormat } from '../../core/states.js';
import type { DataPort, VolumeData } from './ports.js';

/** Bytes gathered before one write (fewer syscalls than the network's 16 KiB chunks). */
const WRITE_BATCH_BYTES = 1024 * 1024;
/** Granularity of the zero check: an all-zero block is skipped, leaving a hole (the file was emptied first). */
const HOLE_BLOCK_BYTES = 64 * 1024;
const ZEROS = Buffer.alloc(HOLE_BLOCK_BYTES);

/**
 * The streaming half of a data port for drivers whose volumes are local files (dir, btrfs, and tgt
 * through its backing store), built on the port's own `locate`: the path always comes from the
 * driver's handle, never from a caller.
 *
 * Only raw images stream. A qcow2 file is not self-contained (a clone may be an overlay whose
 * backing file is a relative name that only exists in the source directory) and a qcow2 file from
 * the wire could name any file on the node as its backing file, so such volumes are refused with
 * CAPABILITY_MISSING (copies between qcow2 backends on one machine still go through qemu-img).
 * Streams never convert: a source and destination of different formats are refused.
 */
export function fileDataStreams(locate: DataPort['locate']): Required<Pick<DataPort, 'openRead' | 'writeFrom'>> {
  return {
    openRead: async (handle, signal) => {
      signal.throwIfAborted();
      const { path, format } = locate(handle);
      assertStreamable(format, 'read');
      const fh = await openVolume(path, 'r');
      let sizeBytes: number;
      try {
        sizeBytes = (await fh.stat()).size;
      } catch (err) {
        await fh.close();
        throw err;
      }
      // The length is fixed when the stream opens: a writer growing the file later changes nothing here.
      const stream = sizeBytes === 0 ? (await fh.close(), Readable.from([])) : fh.createReadStream({ start: 0, end: sizeBytes - 1, highWaterMark: WRITE_BATCH_BYTES });
      const onAbort = (): void => { stream.destroy(toError(signal.reason)); };
      signal.addEventListener('abort', onAbort, { once: true });
      stream.once('close', () => { signal.removeEventListener('abort', onAbort); });
      return { stream, sizeBytes, format };
    },
    writeFrom: async (handle, data, signal, progress) => {
      signal.throwIfAborted();
      const { path, format } = locate(handle);
      if (data.format !== format) {
        throw new StowageError('VALIDATION_FAILED', `a streamed copy cannot turn a ${data.format} image into a ${format} volume (streams copy bytes, they do not convert)`, { sourceFormat: data.format, format });
      }
      assertStreamable(format, 'write');
      if (!Number.isSafeInteger(data.sizeBytes) || data.sizeBytes < 0) {
        throw new StowageError('VALIDATION_FAILED', `a stream's length must be a non-negative integer, got ${String(data.sizeBytes)}`, {});
      }
      await latestWriterWins(path, signal, (s) => writeInto(path, data, s, progress));
    },
  };
}

/** A whole data port for local files: `locate` and the streams built on it. */
export function fileDataPort(locate: DataPort['locate']): DataPort {
  return { locate, ...fileDataStreams(locate) };
}

function assertStreamable(format: VolumeFormat, what: 'read' | 'write'): void {
  if (format !== 'raw') {
    throw new StowageError('CAPABILITY_MISSING', `${format} volumes cannot be ${what === 'read' ? 'streamed from' : 'streamed into'} (only raw images stream; a qcow2 image may depend on a backing file next to it)`, { format, capability: 'format.raw' });
  }
}

async function openVolume(path: string, flags: 'r' | 'r+'): Promise<FileHandle> {
  try {
    return await open(path, flags);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StowageError('VOLUME_NOT_FOUND', 'the volume has no image file on its backend', {});
    throw new StowageError('DRIVER_FAILED', `opening the volume's image failed: ${(err as Error).message}`, {}, { cause: err });
  }
}

/** Writers by path: a new stream into a volume stops the one before it (a retry after a lost connection is the one that counts). */
const writers = new Map<string, { abort: AbortController; done: Promise<unknown> }>();

async function latestWriterWins(path: string, signal: AbortSignal, write: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const previous = writers.get(path);
  if (previous) {
    previous.abort.abort(new StowageError('INVALID_STATE', 'a newer copy into this volume started', {}));
    await previous.done.catch(() => undefined);
  }
  const abort = new AbortController();
  const onAbort = (): void => { abort.abort(signal.reason); };
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) onAbort();
  const done = write(abort.signal);
  const entry = { abort, done };
  writers.set(path, entry);
  try {
    await done;
  } finally {
    signal.removeEventListener('abort', onAbort);
    if (writers.get(path) === entry) writers.delete(path);
  }
}

/**
 * Replaces the file's content with the stream's: the file is emptied and set to max(its size,
 * the stream's length) first, so zero blocks of the source are skipped and stay holes (a sparse
 * source stays sparse), and a requested size larger than the source's is kept. Flushed before it
 * resolves. A stream that ends early or runs long fails (the volume then holds a partial copy; the
 * operation retries, and the retry overwrites it from the start).
 */
async function writeInto(path: string, data: VolumeData, signal: AbortSignal, progress?: (bytesWritten: number) => void): Promise<void> {
  const { stream, sizeBytes } = data;
  // Destroyed without an error: the loop below sees the stream close early and reports the abort's
  // reason (an error emitted on a stream nobody reads yet would be unhandled).
  const onAbort = (): void => { stream.destroy(); };
  signal.addEventListener('abort', onAbort, { once: true });
  let fh: FileHandle | undefined;
  try {
    signal.throwIfAborted();
    fh = await openVolume(path, 'r+');
    const target = Math.max((await fh.stat()).size, sizeBytes);
    await fh.truncate(0);
    await fh.truncate(target);
    let written = 0;
    let batch: Buffer[] = [];
    let batched = 0;
    const flush = async (): Promise<void> => {
      if (batched === 0 || !fh) return;
      const buf = batch.length === 1 && batch[0] ? batch[0] : Buffer.concat(batch, batched);
      await writeSparse(fh, buf, written);
      written += batched;
      batch = [];
      batched = 0;
      progress?.(written);
    };
    for await (const chunk of stream as AsyncIterable<Buffer | string>) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (written + batched + buf.length > sizeBytes) {
        throw new StowageError('VALIDATION_FAILED', `the stream is longer than the ${String(sizeBytes)} bytes it declared`, { sizeBytes });
      }
      batch.push(buf);
      batched += buf.length;
      if (batched >= WRITE_BATCH_BYTES) await flush();
    }
    await flush();
    signal.throwIfAborted();
    if (written !== sizeBytes) {
      throw new StowageError('DRIVER_FAILED', `the stream ended after ${String(written)} of ${String(sizeBytes)} bytes`, { bytesWritten: written, sizeBytes });
    }
    await fh.sync();
  } catch (err) {
    stream.destroy();
    throw signal.aborted && !(err instanceof StowageError) ? toError(signal.reason) : err;
  } finally {
    signal.removeEventListener('abort', onAbort);
    await fh?.close();
  }
}

/** Writes `buf` at `position`, skipping all-zero blocks (the file is known to be zero there). */
async function writeSparse(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let start = -1;
  for (let off = 0; off < buf.length; off += HOLE_BLOCK_BYTES) {
    const end = Math.min(off + HOLE_BLOCK_BYTES, buf.length);
    const zero = buf.subarray(off, end).equals(ZEROS.subarray(0, end - off));
    if (!zero && start < 0) start = off;
    if (zero && start >= 0) {
      await writeAll(fh, buf.subarray(start, off), position + start);
      start = -1;
    }
  }
  if (start >= 0) await writeAll(fh, buf.subarray(start), position + start);
}

async function writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

function toError(reason: unknown): Error {
  return reason instanceof Error ? reason : new StowageError('TIMEOUT', 'the copy was cancelled', {});
}
