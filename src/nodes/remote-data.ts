import type { IncomingMessage } from 'node:http';
import { PassThrough, Transform } from 'node:stream';
import { StowageError, isErrorCode } from '../core/errors.js';
import { VOLUME_FORMATS, type VolumeFormat } from '../core/states.js';
import type { DataPort } from '../drivers/sdk/ports.js';
import type { DriverHandle } from '../drivers/sdk/types.js';
import { readCapped } from '../system/read-capped.js';
import type { NodeChannel, NodeChannels } from './node-channels.js';
import { NODE_HEADERS, NODE_ROUTES, type BackendSpec, type NodeAnswer } from './node-protocol.js';

/** Largest JSON answer read from a data route (an answer or an error: small). */
const ANSWER_CAP_BYTES = 1024 * 1024;

/**
 * The streaming half of a remote backend's data port: `openRead` GETs the volume's bytes from the
 * node (NODE_ROUTES.read), `writeFrom` PUTs them (NODE_ROUTES.write), both over the node's pinned
 * mutual-TLS channel. The remote driver composes these into its `data` port (it has no `locate`:
 * the node's paths mean nothing here).
 *
 * A copy between two nodes is the control plane piping the source node's read response into the
 * destination node's write request, in memory with backpressure (stream pipes: at most a few
 * buffers are in flight), never writing a byte to its own disk. The nodes do not talk to each
 * other directly on purpose: that would need node-to-node trust (each node pinning every other),
 * which the design avoids; each node trusts only its control plane, and both legs of a copy run
 * over channels that are already pinned both ways. The price is that the bytes cross the control
 * plane's network twice.
 */
export function remoteDataStreams(channels: NodeChannels, nodeId: string, backend: BackendSpec): Required<Pick<DataPort, 'openRead' | 'writeFrom'>> {
  return {
    openRead: async (handle, signal) => {
      const ch = await channels.channel(nodeId, 'call');
      // The node going down (or its epoch moving on) cuts the download too, not only the caller.
      const sig = ch.lost ? AbortSignal.any([signal, ch.lost]) : signal;
      let res: IncomingMessage;
      try {
        res = await ch.client.request('GET', dataPath(NODE_ROUTES.read, backend, handle), ch.epoch, sig);
      } catch (err) {
        throw lostOr(ch, signal, err);
      }
      if (res.statusCode !== 200) throw await errorOf(res, ch);
      const sizeBytes = Number(res.headers['content-length']);
      const format = res.headers[NODE_HEADERS.format];
      if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0 || typeof format !== 'string' || !(VOLUME_FORMATS as readonly string[]).includes(format)) {
        res.destroy();
        throw unreachable(ch, 'answered a data read without its length or format');
      }
      // The node cutting the stream (restart, partition) reaches the reader as NODE_UNREACHABLE;
      // the reader stopping (a failed write, a cancel) stops the download.
      const stream = new PassThrough({ highWaterMark: 1024 * 1024 });
      res.on('error', (err) => { stream.destroy(signal.aborted ? toError(signal.reason) : lostOr(ch, signal, unreachable(ch, `cut the stream of ${backend.name}: ${err.message}`))); });
      res.on('aborted', () => { stream.destroy(unreachable(ch, `cut the stream of ${backend.name}`)); });
      stream.on('close', () => { if (!res.complete) res.destroy(); });
      res.pipe(stream);
      return { stream, sizeBytes, format: format as VolumeFormat };
    },
    writeFrom: async (handle, data, signal, progress) => {
      const ch = await channels.channel(nodeId, 'call');
      // One signal for the request: the caller's, or the source stream failing (the destination must
      // see the request cut, not wait for bytes that never come).
      const abort = new AbortController();
      const onAbort = (): void => { abort.abort(signal.reason); };
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) onAbort();
      // The node going down (or its epoch moving on) cuts the upload as well.
      const onLost = (): void => { abort.abort(ch.lost?.reason); };
      ch.lost?.addEventListener('abort', onLost, { once: true });
      if (ch.lost?.aborted) onLost();
      let sourceError: unknown;
      const onSourceError = (err: unknown): void => { sourceError ??= err; abort.abort(err); };
      data.stream.on('error', onSourceError);
      let sent = 0;
      // Progress counts bytes handed to the node's connection (the node's own buffers are small:
      // bytes the node has not yet written are at most a few MiB behind).
      const counter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          sent += chunk.length;
          progress?.(sent);
          cb(null, chunk);
        },
      });
      data.stream.pipe(counter);
      try {
        let res: IncomingMessage;
        try {
          res = await ch.client.request('PUT', dataPath(NODE_ROUTES.write, backend, handle), ch.epoch, abort.signal, counter, {
            'content-type': 'application/octet-stream',
            'content-length': String(data.sizeBytes),
            [NODE_HEADERS.format]: data.format,
          });
        } catch (err) {
          if (sourceError !== undefined) throw toError(sourceError);
          throw lostOr(ch, signal, err);
        }
        if (res.statusCode !== 200) throw await errorOf(res, ch);
        const answer = await answerOf(res, ch);
        // The node answers with its epoch and boot id; an answer from another epoch or process (the
        // node restarted or was re-synced while this copy ran) is a late answer and does not count.
        const bootId = ch.node.boot_id;
        if (answer.epoch !== ch.epoch || (bootId !== null && answer.bootId !== bootId)) {
          throw unreachable(ch, `answered a data write from epoch ${String(answer.epoch)} (boot ${answer.bootId}), not the epoch ${String(ch.epoch)} it was made under`);
        }
        if (!answer.ok) throw wireError(answer.error, ch);
        progress?.(data.sizeBytes);
      } finally {
        signal.removeEventListener('abort', onAbort);
        ch.lost?.removeEventListener('abort', onLost);
        data.stream.off('error', onSourceError);
        data.stream.unpipe(counter);
        if (!data.stream.readableEnded) data.stream.destroy();
      }
    },
  };
}

function dataPath(route: string, backend: BackendSpec, handle: DriverHandle): string {
  const q = new URLSearchParams({ backend: JSON.stringify(backend), handle: JSON.stringify(handle) });
  return `${route}?${q.toString()}`;
}

async function readText(res: IncomingMessage, ch: NodeChannel): Promise<string> {
  try {
    const body = await readCapped(res as AsyncIterable<Buffer>, ANSWER_CAP_BYTES, () => { res.destroy(); return unreachable(ch, `answered with more than ${String(ANSWER_CAP_BYTES)} bytes`); });
    return body.toString('utf8');
  } catch (err) {
    if (err instanceof StowageError) throw err;
    throw unreachable(ch, `cut its answer: ${(err as Error).message}`);
  }
}

async function answerOf(res: IncomingMessage, ch: NodeChannel): Promise<NodeAnswer> {
  const text = await readText(res, ch);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw unreachable(ch, `answered ${String(res.statusCode)} with something that is not JSON`);
  }
  const a = parsed as Partial<NodeAnswer>;
  if (typeof a !== 'object' || a === null || typeof a.ok !== 'boolean' || typeof a.epoch !== 'number' || typeof a.bootId !== 'string') {
    throw unreachable(ch, 'answered a data write without ok, epoch and bootId');
  }
  return a as NodeAnswer;
}

/** The node's error answer (its code crosses unchanged), or NODE_UNREACHABLE when it is not one. */
async function errorOf(res: IncomingMessage, ch: NodeChannel): Promise<StowageError> {
  let text: string;
  try {
    text = await readText(res, ch);
  } catch (err) {
    return err as StowageError;
  }
  try {
    const e = (JSON.parse(text) as { error?: unknown }).error;
    if (typeof e === 'object' && e !== null) return wireError(e, ch);
  } catch { /* not JSON: below */ }
  return unreachable(ch, `answered ${String(res.statusCode)} without an error body`);
}

function wireError(e: { code?: unknown; message?: unknown; details?: unknown }, ch: NodeChannel): StowageError {
  const code = isErrorCode(e.code) ? e.code : 'INTERNAL';
  const details = typeof e.details === 'object' && e.details !== null ? e.details as Record<string, unknown> : {};
  return new StowageError(code, `node ${ch.node.name}: ${typeof e.message === 'string' ? e.message : 'failed'}`, { ...details, node: ch.node.name });
}

/**
 * `err`, or the channel's lost reason (a NODE_UNREACHABLE the operation waits on) when the node
 * went down or changed epoch under a stream the caller itself did not cancel.
 */
function lostOr(ch: NodeChannel, signal: AbortSignal, err: unknown): Error {
  if (!ch.lost?.aborted || signal.aborted) return toError(err);
  return ch.lost.reason instanceof StowageError ? ch.lost.reason : unreachable(ch, 'went down while a stream ran');
}

function unreachable(ch: NodeChannel, what: string): StowageError {
  return new StowageError('NODE_UNREACHABLE', `node ${ch.node.name} ${what}`, { node: ch.node.name, reason: 'unreachable' });
}

function toError(reason: unknown): Error {
  return reason instanceof Error ? reason : new StowageError('TIMEOUT', 'the copy was cancelled', {});
}
