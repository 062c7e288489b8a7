import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { StowageError, isErrorCode } from '../core/errors.js';
import { parseHostPort } from '../system/host-port.js';
import { PinMismatchError, pinnedClientTls, type TlsIdentity } from '../system/tls-identity.js';
import { readCapped } from '../system/read-capped.js';
import { NODE_HEADERS, NODE_ROUTES, type NodeAnswer, type NodeCall, type NodeHealth } from './node-protocol.js';

/** Where a node is and which certificate it must show (its row, as enrollment pinned it). */
export interface NodeTarget {
  readonly name: string;
  /** host:port */
  readonly address: string;
  /** The node's certificate, pinned at enrollment. */
  readonly certPem: string;
}

/** Why a request did not get an answer: the node is down or partitioned, or it showed another key. */
export type UnreachableReason = 'unreachable' | 'auth_failed';

/** Largest JSON answer read from a node (driver answers are small: handles, lists, reports). */
const ANSWER_CAP_BYTES = 16 * 1024 * 1024;

/**
 * The control plane's side of one node's channel: HTTPS with mutual TLS, the node's certificate
 * pinned and the control plane's own `node-client` identity shown. Connections are kept alive (one
 * agent per node), so a call costs one round trip, not a handshake. Transport failures become
 * NODE_UNREACHABLE (details.reason says whether the node was silent or showed the wrong key);
 * errors the node's driver raised come back with their own code.
 */
export class NodeClient {
  private readonly agent: https.Agent;

  constructor(readonly target: NodeTarget, identity: TlsIdentity, private readonly timeoutMs = 60_000) {
    this.agent = new https.Agent({ keepAlive: true, maxSockets: 16, ...pinnedClientTls(target.certPem, identity) });
  }

  /** The node's heartbeat answer. */
  async health(signal: AbortSignal, epoch = 0): Promise<NodeHealth> {
    return this.json<NodeHealth>('GET', NODE_ROUTES.health, undefined, epoch, signal);
  }

  /** Opens `epoch` on the node: from now on it refuses calls made under an older one. */
  async openEpoch(epoch: number, signal: AbortSignal): Promise<NodeHealth> {
    return this.json<NodeHealth>('POST', NODE_ROUTES.epoch, { epoch }, epoch, signal);
  }

  /** Runs one driver method on the node; returns the raw answer (the caller checks its epoch). */
  async call(call: NodeCall, epoch: number, signal: AbortSignal, operationId?: string): Promise<NodeAnswer> {
    return this.json<NodeAnswer>('POST', NODE_ROUTES.call, call, epoch, signal, operationId);
  }

  /**
   * A raw request for the data routes (streams): resolves with the response once its headers are
   * in. `body`, when given, is piped as the request body. Transport errors as for `call`.
   */
  request(method: 'GET' | 'PUT', path: string, epoch: number, signal: AbortSignal, body?: NodeJS.ReadableStream, headers: Record<string, string> = {}): Promise<IncomingMessage> {
    const [host, port] = splitAddress(this.target.address);
    return new Promise((resolve, reject) => {
      const req = https.request({
        host, port, path, method, agent: this.agent, signal,
        headers: { [NODE_HEADERS.epoch]: String(epoch), [NODE_HEADERS.node]: this.target.name, ...headers },
      }, resolve);
      req.setTimeout(this.timeoutMs, () => { req.destroy(new StowageError('NODE_UNREACHABLE', `node ${this.target.name} (${this.target.address}) did not answer within ${this.timeoutMs} ms`, { node: this.target.name, reason: 'unreachable' })); });
      req.on('error', (err) => { reject(this.transportError(err, signal)); });
      if (body) body.pipe(req); else req.end();
    });
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  private async json<T>(method: 'GET' | 'POST', path: string, body: unknown, epoch: number, signal: AbortSignal, operationId?: string): Promise<T> {
    const [host, port] = splitAddress(this.target.address);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = https.request({
        host, port, path, method, agent: this.agent, signal,
        headers: {
          [NODE_HEADERS.epoch]: String(epoch), [NODE_HEADERS.node]: this.target.name,
          ...(operationId ? { [NODE_HEADERS.operation]: operationId } : {}),
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
        },
      }, (r) => {
        readCapped(r as AsyncIterable<Buffer>, ANSWER_CAP_BYTES, () => new Error(`answer larger than ${ANSWER_CAP_BYTES} bytes`)).then(
          (body) => { resolve({ status: r.statusCode ?? 0, text: body.toString('utf8') }); },
          (err: unknown) => { reject(this.transportError(err, signal)); },
        );
      });
      req.setTimeout(this.timeoutMs, () => { req.destroy(new StowageError('NODE_UNREACHABLE', `node ${this.target.name} (${this.target.address}) did not answer within ${this.timeoutMs} ms`, { node: this.target.name, reason: 'unreachable' })); });
      req.on('error', (err) => { reject(this.transportError(err, signal)); });
      req.end(payload);
    });
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.text);
    } catch {
      throw new StowageError('NODE_UNREACHABLE', `node ${this.target.name} answered ${res.status} with something that is not JSON`, { node: this.target.name, reason: 'unreachable', status: res.status });
    }
    if (res.status >= 400) {
      const e = (parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } }).error ?? {};
      const code = isErrorCode(e.code) ? e.code : 'INTERNAL';
      throw new StowageError(code, `node ${this.target.name}: ${typeof e.message === 'string' ? e.message : `answered ${res.status}`}`, { ...(typeof e.details === 'object' && e.details ? e.details : {}), node: this.target.name });
    }
    return parsed as T;
  }

  private transportError(err: unknown, signal: AbortSignal): Error {
    if (signal.aborted) return err instanceof Error ? err : new Error(String(err));
    if (err instanceof StowageError) return err;
    const pin = findPinMismatch(err);
    if (pin) {
      return new StowageError('NODE_UNREACHABLE', `node ${this.target.name} (${this.target.address}) showed a TLS certificate other than the one pinned at enrollment (${pin.seen}); re-enroll it if it was re-keyed on purpose`, { node: this.target.name, reason: 'auth_failed' satisfies UnreachableReason }, { cause: err });
    }
    const msg = err instanceof Error ? err.message : String(err);
    // The node refusing our certificate ends the handshake with an alert: that is trust, not reachability.
    const reason: UnreachableReason = /alert|certificate/i.test(msg) ? 'auth_failed' : 'unreachable';
    return new StowageError('NODE_UNREACHABLE', `node ${this.target.name} (${this.target.address}) is not reachable: ${msg}`, { node: this.target.name, reason }, { cause: err });
  }
}

function findPinMismatch(err: unknown): PinMismatchError | undefined {
  for (let e: unknown = err, i = 0; e && i < 5; e = (e as { cause?: unknown }).cause, i++) {
    if (e instanceof PinMismatchError) return e;
  }
  return undefined;
}

/** Splits `host:port` (or `[v6]:port`) into its parts. */
export function splitAddress(address: string): [string, number] {
  const hp = parseHostPort(address);
  if (!hp) throw new StowageError('VALIDATION_FAILED', `"${address}" is not host:port`, { address });
  return [hp.host, hp.port];
}
