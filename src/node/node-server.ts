import { randomUUID } from 'node:crypto';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { StowageError, toStowageError } from '../core/errors.js';
import type { DriverFactory } from '../drivers/sdk/types.js';
import type { CommandRunner } from '../system/command-runner.js';
import { readCapped } from '../system/read-capped.js';
import { fingerprintOf, peerFingerprint, pinnedServerTls, type TlsIdentity } from '../system/tls-identity.js';
import { NODE_HEADERS, NODE_PROTOCOL_VERSION, NODE_ROUTES, type NodeHealth } from '../nodes/node-protocol.js';

/** What `stowage node run` starts the node's server with, once it has its identity and its control plane's certificate. */
export interface NodeServerOptions {
  readonly name: string;
  readonly listen: { readonly host: string; readonly port: number };
  /** The node's own key and certificate (generated at enrollment, kept 0600 in its state dir). */
  readonly identity: TlsIdentity;
  /** The control plane's `node-client` certificate, pinned at enrollment: the only client accepted. */
  readonly controlPlaneCertPem: string;
  /** The node's state dir (drivers keep their local state under it, e.g. tgt's grant ledger). */
  readonly dataDir: string;
  readonly runner: CommandRunner;
  readonly factories: readonly DriverFactory[];
  readonly logger: Logger;
  readonly version: string;
}

/** A node's server, listening. */
export interface RunningNode {
  readonly address: { readonly host: string; readonly port: number };
  readonly bootId: string;
  close(): Promise<void>;
}

/** One route of the node's server: gets the request once its caller is known to be the control plane. */
export type NodeRouteHandler = (req: IncomingMessage, res: ServerResponse, ctx: NodeRequestContext) => Promise<void>;

/** What every route handler may use. */
export interface NodeRequestContext {
  readonly epoch: number;
  readonly signal: AbortSignal;
  readonly state: NodeProcessState;
}

/** The node process's few facts: its boot id and the highest epoch the control plane opened with it. */
export class NodeProcessState {
  readonly bootId = randomUUID();
  epoch = 0;
  inFlight = 0;
  readonly backends = new Set<string>();

  constructor(readonly name: string, readonly version: string) {}

  health(): NodeHealth {
    return {
      name: this.name, version: this.version, protocol: NODE_PROTOCOL_VERSION, bootId: this.bootId, epoch: this.epoch,
      time: new Date().toISOString(), inFlight: this.inFlight, backends: [...this.backends].sort(),
    };
  }
}

/** Largest JSON request body (driver calls carry handles and small specs). */
export const NODE_BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * Starts the node's HTTPS server. TLS itself refuses every client that does not hold the control
 * plane's pinned key; each request is checked again (the peer's fingerprint, the node name the
 * control plane believes it talks to, and the epoch: a call under an epoch older than the current
 * one is refused with STALE_EPOCH). `routes` adds handlers by path (the driver call and data routes).
 */
export async function startNodeServer(opts: NodeServerOptions, routes: Readonly<Record<string, NodeRouteHandler>> = {}): Promise<RunningNode> {
  const state = new NodeProcessState(opts.name, opts.version);
  const pinned = fingerprintOf(opts.controlPlaneCertPem);
  const log = opts.logger.child({ node: opts.name, bootId: state.bootId });
  const table: Record<string, NodeRouteHandler> = {
    [NODE_ROUTES.health]: async (_req, res) => { sendJson(res, 200, state.health()); },
    [NODE_ROUTES.epoch]: async (req, res) => {
      const body = await readJsonBody(req) as { epoch?: unknown };
      if (typeof body.epoch !== 'number' || !Number.isSafeInteger(body.epoch) || body.epoch < 0) throw new StowageError('VALIDATION_FAILED', 'epoch must be a non-negative integer', {});
      if (body.epoch < state.epoch) throw new StowageError('STALE_EPOCH', `epoch ${body.epoch} is older than the node's current ${state.epoch}`, { epoch: state.epoch });
      if (body.epoch > state.epoch) log.info({ from: state.epoch, to: body.epoch }, 'control plane opened a new epoch');
      state.epoch = body.epoch;
      sendJson(res, 200, state.health());
    },
    ...routes,
  };
  const server = https.createServer(pinnedServerTls(opts.identity, opts.controlPlaneCertPem), (req, res) => {
    void serve(req, res);
  });
  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const abort = new AbortController();
    res.on('close', () => { if (!res.writableFinished) abort.abort(new StowageError('TIMEOUT', 'the control plane closed the call', {})); });
    try {
      if (!(req.socket instanceof TLSSocket) || peerFingerprint(req.socket) !== pinned) throw new StowageError('UNAUTHORIZED', 'only the control plane this node enrolled with may call it', {});
      const named = req.headers[NODE_HEADERS.node];
      if (named !== opts.name) throw new StowageError('FORBIDDEN', `this is node ${opts.name}, not ${String(named)}`, { node: opts.name });
      const epoch = Number(req.headers[NODE_HEADERS.epoch] ?? '0');
      const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
      const handler = table[path];
      if (!handler) throw new StowageError('NOT_FOUND', `no route ${req.method ?? ''} ${path}`, {});
      if (path !== NODE_ROUTES.health && path !== NODE_ROUTES.epoch && epoch < state.epoch) {
        throw new StowageError('STALE_EPOCH', `call made under epoch ${epoch}; the node is in epoch ${state.epoch}`, { epoch: state.epoch });
      }
      // In flight counts the control plane's work (calls and data streams), not the heartbeat asking.
      const counted = path !== NODE_ROUTES.health && path !== NODE_ROUTES.epoch;
      if (counted) state.inFlight++;
      try {
        await handler(req, res, { epoch, signal: abort.signal, state });
      } finally {
        if (counted) state.inFlight--;
      }
    } catch (err) {
      const e = toStowageError(err);
      if (e.code === 'INTERNAL') log.error({ err }, 'node request failed');
      if (!res.headersSent) sendJson(res, e.httpStatus, { ok: false, epoch: state.epoch, bootId: state.bootId, error: e.toJSON() });
      else res.destroy();
    }
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.listen.port, opts.listen.host, () => { server.off('error', reject); resolve(); });
  });
  const a = server.address();
  const address = typeof a === 'object' && a ? { host: a.address, port: a.port } : opts.listen;
  log.info({ address }, 'node listening');
  return {
    address, bootId: state.bootId,
    close: () => new Promise<void>((resolve) => { server.close(() => { resolve(); }); server.closeAllConnections(); }),
  };
}

/** Writes a JSON answer. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Reads a JSON request body of at most NODE_BODY_LIMIT_BYTES. */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const body = await readCapped(req as AsyncIterable<Buffer>, NODE_BODY_LIMIT_BYTES, () => new StowageError('PAYLOAD_TOO_LARGE', `request body larger than ${NODE_BODY_LIMIT_BYTES} bytes`, {}));
  if (body.length === 0) return {};
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new StowageError('VALIDATION_FAILED', 'request body is not JSON', {});
  }
}
