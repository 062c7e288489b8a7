import { X509Certificate } from 'node:crypto';
import { Agent, request as httpRequest, type RequestOptions } from 'node:http';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { fingerprintOf, peerFingerprint, PinMismatchError } from './tls-identity.js';

/** What a client pins of an HTTPS API: the leaf certificate's fingerprint and, when known, the certificate. */
export interface ApiPin {
  readonly fingerprint: string;
  readonly certPem?: string | undefined;
}

function hostPort(url: URL): { host: string; port: number } {
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (url.protocol === 'http:' ? 80 : 443)) };
}

function servername(host: string): string | undefined {
  // SNI takes DNS names only; for an IP address send none.
  return /^[0-9.]+$|:/.test(host) ? undefined : host;
}

/** The PEM of a DER certificate. */
function pemOf(der: Buffer): string {
  return new X509Certificate(der).toString();
}

/**
 * The certificate the TLS server at `host:port` presents, for trust on first use or to compare
 * with a pin before any secret goes out: a bare handshake that accepts any certificate and sends
 * nothing after it (no request, no token), then closes.
 */
export function fetchCertificate(host: string, port: number, timeoutMs = 10_000): Promise<{ certPem: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const sn = servername(host);
    const s = connect({ host, port, ...pinTls(), ...(sn ? { servername: sn } : {}) });
    const timer = setTimeout(() => { s.destroy(new Error(`no TLS handshake with ${host}:${String(port)} within ${String(timeoutMs)} ms`)); }, timeoutMs);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      const raw = s.getPeerCertificate().raw as Buffer | undefined;
      s.destroy();
      if (!raw || raw.length === 0) { reject(new Error(`${host}:${String(port)} presented no certificate`)); return; }
      resolve({ certPem: pemOf(raw), fingerprint: fingerprintOf(raw) });
    });
    s.once('error', (err: Error) => { clearTimeout(timer); reject(err); });
  });
}

/** The certificate the HTTPS server at `url` presents (fetchCertificate on its host and port). */
export function probeCertificate(url: string, timeoutMs = 10_000): Promise<{ certPem: string; fingerprint: string }> {
  const { host, port } = hostPort(new URL(url));
  return fetchCertificate(host, port, timeoutMs);
}

/**
 * TLS options for talking to the API pinned by `pin`. OpenSSL does not verify the chain
 * (rejectUnauthorized: false); the pin alone decides, checked by connectPinned on the finished
 * handshake before the socket carries a byte: the handshake proves the server holds the key of the
 * certificate it showed, and that certificate must be exactly the pinned one. Why not
 * pinnedClientTls (`ca: [pinned]`): a configured CA-signed leaf cannot be a trust anchor (OpenSSL
 * wants a self-signed root; Node exposes no partial-chain flag), so it would fail; and for a
 * self-signed one a wrong server would fail inside the handshake with a chain error instead of
 * the clear pin mismatch this check reports. Either way nothing is sent to the wrong server.
 */
function pinTls(): ConnectionOptions {
  return { rejectUnauthorized: false, minVersion: 'TLSv1.2' };
}

/**
 * A TLS connection to `host:port` handed over only once its certificate's fingerprint is the pin:
 * the check runs on the finished handshake, before HTTP writes anything, whatever pinTls chose.
 */
function connectPinned(host: string, port: number, pin: ApiPin, cb: (err: Error | null, s?: TLSSocket) => void): void {
  const sn = servername(host);
  const s = connect({ host, port, ...pinTls(), ...(sn ? { servername: sn } : {}) });
  let done = false;
  const finish = (err: Error | null, sock?: TLSSocket): void => { if (!done) { done = true; cb(err, sock); } };
  s.once('secureConnect', () => {
    const seen = peerFingerprint(s) ?? 'none';
    if (seen !== pin.fingerprint) {
      s.destroy();
      finish(new PinMismatchError(pin.fingerprint, seen));
      return;
    }
    finish(null, s);
  });
  s.once('error', (err: Error) => { finish(err); });
}

/** How a pinned fetch treats its connections. */
export interface PinnedFetchOptions {
  /**
   * Keep the pinned connection open between requests of this fetch (one socket per host:port,
   * reused while idle, each pinned when it was made). For a short-lived process making a few
   * requests in a row (a CLI command: submit, then poll); off by default, so a long-lived caller
   * never sends on a connection the server may have timed out meanwhile.
   */
  readonly keepAlive?: boolean;
}

/** A request as the light transports take it: string headers and body, no fetch classes. */
export interface PlainInit {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | null;
  readonly signal?: AbortSignal;
}

/** An answer as the light transports give it (what `Response` offers that the CLI reads). */
export interface PlainResponse {
  readonly status: number;
  readonly ok: boolean;
  text(): Promise<string>;
}

/** A PlainResponse with its headers (lower-case names), for the fetch-shaped wrapper. */
interface NodeResponse extends PlainResponse {
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * fetch's calling shape without fetch's classes. Global fetch, Headers and Response load Node's
 * bundled HTTP client on first use (25 to 45 ms of a CLI call), and fetch keeps its socket
 * referenced after the answer (a command exited 100 ms after it was done); these run on node:http,
 * and a kept idle socket never holds the process open. Global fetch fits this type too.
 */
export type PlainRequest = (url: URL | string, init?: PlainInit) => Promise<PlainResponse>;

/**
 * A fetch for one HTTPS API pinned by `pin` (node:http over a pinned TLS socket): same calling
 * shape as global fetch for what the CLI and the agent send (method, headers, string body, signal).
 * A pin mismatch rejects with PinMismatchError (as the `cause` of the TypeError fetch would throw).
 */
export function pinnedFetch(pin: ApiPin, options: PinnedFetchOptions = {}): typeof fetch {
  const send = pinnedNodeRequest(pin, options);
  return async (input, init = {}) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input : input.url;
    const body = typeof init.body === 'string' ? init.body : init.body == null ? null : undefined;
    if (body === undefined) throw new TypeError('pinnedFetch sends string bodies only');
    const res = await send(url, {
      method: init.method ?? 'GET', headers: Object.fromEntries(new Headers(init.headers).entries()), body, ...(init.signal ? { signal: init.signal } : {}),
    });
    const text = await res.text();
    return new Response(res.status === 204 || res.status === 304 || text.length === 0 ? null : text, { status: res.status, headers: new Headers(res.headers) });
  };
}

/** `pinnedFetch` as a PlainRequest (for the CLI). */
export function pinnedRequest(pin: ApiPin, options: PinnedFetchOptions = {}): PlainRequest {
  return pinnedNodeRequest(pin, options);
}

function pinnedNodeRequest(pin: ApiPin, options: PinnedFetchOptions): (url: URL | string, init?: PlainInit) => Promise<NodeResponse> {
  const connection = (host: string, port: number) => (_opts: unknown, cb: (err: Error | null, s?: TLSSocket) => void): undefined => { connectPinned(host, port, pin, cb); return undefined; };
  return nodeRequest('https:', options.keepAlive === true, connection);
}

/** A PlainRequest for plain-HTTP (loopback) APIs, one kept connection per host. */
export function plainRequest(): PlainRequest {
  return nodeRequest('http:', true, null);
}

type Connector = (host: string, port: number) => (opts: unknown, cb: (err: Error | null, s?: TLSSocket) => void) => undefined;

/** A PlainRequest over node:http for `protocol` URLs, on connections `connect` makes (null: plain TCP). */
function nodeRequest(protocol: 'http:' | 'https:', keepAlive: boolean, connect: Connector | null): (url: URL | string, init?: PlainInit) => Promise<NodeResponse> {
  // An idle kept socket is unref'd by the agent, so it never holds the process open.
  const agents = new Map<string, Agent>();
  const agentFor = (host: string, port: number): Agent => {
    const key = `${host}:${String(port)}`;
    let agent = agents.get(key);
    if (!agent) {
      agent = new Agent({ keepAlive: true, maxSockets: 4 });
      if (connect) (agent as unknown as { createConnection: unknown }).createConnection = connect(host, port);
      agents.set(key, agent);
    }
    return agent;
  };
  return (input, init = {}) => new Promise<NodeResponse>((resolve, reject) => {
    const url = typeof input === 'string' ? new URL(input) : input;
    if (url.protocol !== protocol) { reject(new TypeError(`this transport is for ${protocol} URLs, not ${url.protocol}`)); return; }
    const { host, port } = hostPort(url);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(init.headers ?? {})) headers[k.toLowerCase()] = v;
    const body = init.body ?? null;
    if (body !== null) headers['content-length'] = String(Buffer.byteLength(body));
    const via = keepAlive ? { agent: agentFor(host, port) } : connect ? { createConnection: connect(host, port) } : { agent: false };
    const req = httpRequest({
      host, port, method: init.method ?? 'GET', path: `${url.pathname}${url.search}`, headers: { host: url.host, ...headers },
      ...via, ...(init.signal ? { signal: init.signal } : {}),
    } as unknown as RequestOptions, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const status = res.statusCode ?? 500;
        const text = Buffer.concat(chunks).toString('utf8');
        const h: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h[k] = v;
        resolve({ status, ok: status >= 200 && status < 300, headers: h, text: () => Promise.resolve(text) });
      });
    });
    req.on('error', (err) => { reject(err.name === 'AbortError' ? err : new TypeError('fetch failed', { cause: err })); });
    req.end(body ?? undefined);
  });
}
