import type { IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { StowageError } from '../core/errors.js';
import { VOLUME_FORMATS, type VolumeFormat } from '../core/states.js';
import { fileDataStreams } from '../drivers/sdk/file-streams.js';
import type { DataPort } from '../drivers/sdk/ports.js';
import type { DriverHandle } from '../drivers/sdk/types.js';
import { NODE_HEADERS, NODE_ROUTES, type BackendSpec, type NodeAnswer } from '../nodes/node-protocol.js';
import type { Failpoints } from '../operations/failpoints.js';
import type { NodeDriverHost } from './driver-host.js';
import { sendJson, type NodeRouteHandler } from './node-server.js';

/** Longest JSON a query parameter may carry (a backend spec or a handle is a few hundred bytes). */
const PARAM_LIMIT = 8 * 1024;

/**
 * The node's data routes: a volume's bytes out (NODE_ROUTES.read) and in (NODE_ROUTES.write), so a
 * copy between two nodes never lands on the control plane's disk (the control plane pipes one
 * node's read into the other's write, in memory with backpressure; see nodes/remote-data.ts).
 * The wire names only a backend spec and a driver handle: the driver resolves the path inside its
 * own directory from the handle, as it does for every other call, so no path is ever taken from a
 * request. Both routes stop when the control plane goes away (ctx.signal). `failpoints` (recovery
 * tests only): `data.read:before`, `data.write:before` and `data.write:after` (the bytes written, the answer lost).
 */
export function dataRoutes(host: NodeDriverHost, failpoints?: Failpoints): Readonly<Record<string, NodeRouteHandler>> {
  const hit = failpoints?.enabled ? failpoints : undefined;
  return {
    [NODE_ROUTES.read]: async (req, res, ctx) => {
      assertMethod(req, 'GET');
      const { backend, handle } = parseTarget(req);
      const data = streamsOf(host, backend);
      await hit?.hit('data.read:before');
      const volume = await data.openRead(handle, ctx.signal);
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': String(volume.sizeBytes),
        [NODE_HEADERS.format]: volume.format,
      });
      // Headers are out: a failure from here on can only cut the stream, which the reader sees as a short body.
      try {
        await pipeline(volume.stream, res, { signal: ctx.signal });
      } catch (err) {
        // The control plane went away (a cancelled or failed copy): nothing to answer, nothing to log.
        if (!ctx.signal.aborted) throw err;
        res.destroy();
      }
    },
    [NODE_ROUTES.write]: async (req, res, ctx) => {
      assertMethod(req, 'PUT');
      const { backend, handle } = parseTarget(req);
      const sizeBytes = contentLength(req);
      const format = formatHeader(req);
      const data = streamsOf(host, backend);
      let bytesWritten = 0;
      await hit?.hit('data.write:before');
      await data.writeFrom(handle, { stream: req, sizeBytes, format }, ctx.signal, (n) => { bytesWritten = n; });
      await hit?.hit('data.write:after');
      const answer: NodeAnswer = { ok: true, epoch: ctx.state.epoch, bootId: ctx.state.bootId, value: { bytesWritten } };
      sendJson(res, 200, answer);
    },
  };
}

/** The driver's streams, or ones built on its `locate` when it has a path but no streams of its own. */
function streamsOf(host: NodeDriverHost, backend: BackendSpec): Required<Pick<DataPort, 'openRead' | 'writeFrom'>> {
  const data = host.driverFor(backend).data;
  if (!data) throw new StowageError('CAPABILITY_MISSING', `backend ${backend.name} cannot expose its data for a copy`, { backend: backend.name, port: 'data' });
  if (data.openRead && data.writeFrom) return data as Required<Pick<DataPort, 'openRead' | 'writeFrom'>>;
  return fileDataStreams((h) => data.locate(h));
}

function assertMethod(req: IncomingMessage, method: 'GET' | 'PUT'): void {
  if (req.method !== method) throw new StowageError('VALIDATION_FAILED', `${req.url?.split('?', 1)[0] ?? ''} takes ${method}, not ${req.method ?? ''}`, {});
}

/** The backend and handle a data request names, from its query (JSON each), validated. */
export function parseTarget(req: IncomingMessage): { backend: BackendSpec; handle: DriverHandle } {
  const query = new URL(req.url ?? '/', 'https://node.invalid').searchParams;
  const backend = jsonParam(query, 'backend');
  const handle = jsonParam(query, 'handle');
  if (!isRecord(backend) || typeof backend.id !== 'string' || typeof backend.name !== 'string' || typeof backend.uri !== 'string'
    || !isRecord(backend.options) || !Object.values(backend.options).every((v) => typeof v === 'string')) {
    throw new StowageError('VALIDATION_FAILED', 'backend must be a backend spec (id, name, uri, options of strings)', {});
  }
  if (!isRecord(handle)) throw new StowageError('VALIDATION_FAILED', 'handle must be a driver handle (a JSON object)', {});
  const spec: BackendSpec = { id: backend.id, name: backend.name, uri: backend.uri, options: backend.options as Record<string, string> };
  return { backend: spec, handle: handle };
}

function jsonParam(query: URLSearchParams, name: string): unknown {
  const text = query.get(name);
  if (text === null) throw new StowageError('VALIDATION_FAILED', `the ${name} query parameter is missing`, {});
  if (text.length > PARAM_LIMIT) throw new StowageError('VALIDATION_FAILED', `the ${name} query parameter is longer than ${String(PARAM_LIMIT)} characters`, {});
  try {
    return JSON.parse(text);
  } catch {
    throw new StowageError('VALIDATION_FAILED', `the ${name} query parameter is not JSON`, {});
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The body's declared length: required (a chunked body of unknown length is refused). */
function contentLength(req: IncomingMessage): number {
  const text = req.headers['content-length'];
  if (text === undefined || !/^\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new StowageError('VALIDATION_FAILED', 'a data write needs a content-length (the stream\'s exact length in bytes)', {});
  }
  return Number(text);
}

function formatHeader(req: IncomingMessage): VolumeFormat {
  const f = req.headers[NODE_HEADERS.format];
  if (typeof f !== 'string' || !(VOLUME_FORMATS as readonly string[]).includes(f)) {
    throw new StowageError('VALIDATION_FAILED', `a data write needs the ${NODE_HEADERS.format} header (${VOLUME_FORMATS.join(' or ')})`, {});
  }
  return f as VolumeFormat;
}
