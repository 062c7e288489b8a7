import { readdirSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';
import type { ApiResponse, JsonClient } from '../helpers/server.js';

/** One documented route: its method and OpenAPI path (`/v1/volumes/{ref}`). */
export interface RouteRef {
  readonly method: string;
  readonly path: string;
}

/** The subset of an OpenAPI 3 document these tests read. */
export interface OpenApiDoc {
  paths: Record<string, Record<string, { summary?: string; responses?: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }> }>>;
  components?: { schemas?: Record<string, { type?: string; required?: string[]; properties?: Record<string, unknown> }> };
}

const HTTP_METHODS = new Set(['get', 'post', 'put', 'patch', 'delete']);

/** Every (method, path) /openapi.json documents. */
export function documentedRoutes(doc: OpenApiDoc): RouteRef[] {
  const out: RouteRef[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops)) if (HTTP_METHODS.has(method)) out.push({ method: method.toUpperCase(), path });
  }
  return out.sort((a, b) => `${a.path} ${a.method}`.localeCompare(`${b.path} ${b.method}`));
}

/**
 * Every route the Fastify app really serves, read from `printRoutes()` (HEAD, which Fastify adds to
 * every GET, is left out), with `:param` written as OpenAPI's `{param}`.
 */
export function servedRoutes(app: FastifyInstance): RouteRef[] {
  const out: RouteRef[] = [];
  const stack: { depth: number; path: string }[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^([│ ]*)[├└]── (\S+)(?: \(([^)]*)\))?/.exec(line);
    if (!m?.[2]) continue;
    const depth = (m[1] ?? '').length / 4;
    while (stack.length > 0 && (stack.at(-1)?.depth ?? 0) >= depth) stack.pop();
    const path = `${stack.at(-1)?.path ?? ''}${m[2]}`;
    stack.push({ depth, path });
    for (const method of (m[3] ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
      if (method !== 'HEAD') out.push({ method, path: path.replace(/:([A-Za-z0-9_]+)/g, '{$1}') });
    }
  }
  return out.sort((a, b) => `${a.path} ${a.method}`.localeCompare(`${b.path} ${b.method}`));
}

/** Fills `{param}` placeholders with a harmless value. */
export function concretePath(path: string): string {
  return path.replace(/\{[^}]+\}/g, 'x');
}

/** Asserts an error answer: the status, the stable code, and a message worth reading. */
export function expectError(r: ApiResponse, status: number, code: string | readonly string[]): { code: string; message: string; details: Record<string, unknown> } {
  const codes = typeof code === 'string' ? [code] : code;
  expect(r.status, r.text).toBe(status);
  const body = r.body as { code?: unknown; message?: unknown; details?: unknown } | undefined;
  expect(body, r.text).toBeDefined();
  expect(codes, r.text).toContain(body?.code);
  expect(typeof body?.message).toBe('string');
  expect((body?.message as string).length, r.text).toBeGreaterThan(10);
  expect(typeof body?.details).toBe('object');
  return body as { code: string; message: string; details: Record<string, unknown> };
}

/** Everything a failed request must leave unchanged. */
export interface WorldSnapshot {
  readonly volumes: string[];
  readonly backends: string[];
  readonly operations: string[];
  readonly lastEventSeq: number;
  readonly files: string[];
}

/** Lists volumes, backends, operations, the newest event and the files in the given backend dirs. */
export async function snapshotWorld(api: JsonClient, dirs: readonly string[]): Promise<WorldSnapshot> {
  const vols = await api.ok<{ items: { id: string; state: string; sizeBytes: number }[] }>('GET', '/v1/volumes?limit=1000', 200);
  const bks = await api.ok<{ items: { id: string }[] }>('GET', '/v1/backends', 200);
  const ops = await api.ok<{ items: { id: string }[] }>('GET', '/v1/operations?limit=1000', 200);
  const evs = await api.ok<{ items: { seq: number }[] }>('GET', '/v1/events?limit=1', 200);
  return {
    volumes: vols.items.map((v) => `${v.id}:${v.state}:${String(v.sizeBytes)}`).sort(),
    backends: bks.items.map((b) => b.id).sort(),
    operations: ops.items.map((o) => o.id).sort(),
    lastEventSeq: evs.items[0]?.seq ?? 0,
    files: dirs.flatMap((d) => readdirSync(d).map((f) => `${d}/${f}`)).sort(),
  };
}

/**
 * One request through the server's client (`app.inject()` for an InjectServer) with its admin token;
 * a raw body is sent as is, declared JSON unless `contentType` says otherwise.
 */
export async function inject(s: { readonly api: JsonClient }, method: string, url: string, opts: { body?: unknown; rawBody?: string; contentType?: string; headers?: Record<string, string> } = {}): Promise<ApiResponse> {
  const hasBody = opts.rawBody !== undefined || opts.body !== undefined;
  return s.api.request(method, url, { ...opts, ...(hasBody ? { contentType: opts.contentType ?? 'application/json' } : {}) });
}
