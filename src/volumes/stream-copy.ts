import { StowageError } from '../core/errors.js';
import type { DataPort } from '../drivers/sdk/ports.js';
import type { DriverHandle } from '../drivers/sdk/types.js';
import type { StepContext } from '../operations/handler.js';

/** One side of a streamed copy: a backend's data port and the volume's handle on it. */
export interface StreamEnd {
  readonly data: DataPort;
  readonly handle: DriverHandle;
  /** The backend's name, for errors. */
  readonly backend: string;
}

/**
 * Copies a volume's bytes from one backend to another through their data streams, for copies that
 * involve a storage node (qemu-img needs both files on this machine). For two remote backends the
 * source node's read response is piped into the destination node's write request in memory with
 * backpressure (nodes/remote-data.ts): nothing is staged on this machine's disk. Progress goes to
 * the operation as bytes over the source's length. Returns the bytes copied. A failure leaves the
 * destination partly written: the step's retry copies again from the start, overwriting it fully.
 */
export async function streamCopy(ctx: StepContext, from: StreamEnd, to: StreamEnd): Promise<number> {
  const openRead = from.data.openRead?.bind(from.data);
  const writeFrom = to.data.writeFrom?.bind(to.data);
  if (!openRead) throw new StowageError('CAPABILITY_MISSING', `backend ${from.backend} cannot stream its volumes for a copy`, { backend: from.backend, port: 'data' });
  if (!writeFrom) throw new StowageError('CAPABILITY_MISSING', `backend ${to.backend} cannot take a streamed copy`, { backend: to.backend, port: 'data' });
  const source = await openRead(from.handle, ctx.signal);
  try {
    const total = source.sizeBytes;
    await writeFrom(to.handle, source, ctx.signal, (n) => { if (total > 0) ctx.progress(Math.min(1, n / total)); });
    ctx.progress(1);
    return total;
  } finally {
    if (!source.stream.readableEnded) source.stream.destroy();
  }
}
