import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../../src/config/config.js';
import { JsonClient, parseJsonText, startInProcessServer, type ApiRequestOptions, type ApiResponse, type InProcessServer } from './server.js';

/**
 * The HTTP tier of the API tests: the real app (routes, schemas, auth, error handler, request log)
 * answers through Fastify's `app.inject()`, with no fetch and no TCP connection in between. Tests
 * keep the request shape they had over HTTP (`request`, `ok`), so a file moves by changing how it
 * starts its server. Process-level tests (kill -9, replicas, agents, CLI subprocesses) keep
 * `ApiClient` over a real socket.
 */
export class InjectClient extends JsonClient {
  constructor(readonly app: FastifyInstance, token: string) {
    super(token);
  }

  /** Sends one request through `app.inject()`; never throws for HTTP error statuses. */
  async request(method: string, path: string, opts: ApiRequestOptions = {}): Promise<ApiResponse> {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    const token = opts.token === undefined ? this.token : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let payload: string | Buffer | undefined;
    if (opts.rawBody !== undefined) {
      payload = opts.rawBody;
      if (opts.contentType !== undefined) headers['content-type'] = opts.contentType;
    } else if (opts.body !== undefined) {
      payload = JSON.stringify(opts.body);
      headers['content-type'] = opts.contentType ?? 'application/json';
    }
    const res = await this.app.inject({
      method: method as 'GET', url: path, headers, ...(payload !== undefined ? { payload } : {}), ...(opts.remoteAddress !== undefined ? { remoteAddress: opts.remoteAddress } : {}),
    });
    return { status: res.statusCode, body: parseJsonText(res.body), text: res.body };
  }
}

/** An in-process server whose `api` goes through `app.inject()`. */
export interface InjectServer extends Omit<InProcessServer, 'api'> {
  readonly api: InjectClient;
}

/**
 * Starts the real composition in this process (as `startInProcessServer` does: temp data dir,
 * workers, background loops, the bootstrap token and `local` backend) and talks to it through
 * `app.inject()`. The listener on a loopback port 0 still exists because `startServer` opens it;
 * only tests that hand the URL to a subprocess (the CLI) use it.
 */
export async function startInjectServer(overrides: Partial<Config> = {}, logger?: Logger): Promise<InjectServer> {
  const s = await startInProcessServer(overrides, logger);
  return { ...s, api: new InjectClient(s.server.app, s.token) };
}
