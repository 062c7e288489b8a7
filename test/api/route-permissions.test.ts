import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RoutePermissionCheck } from '../../src/api/auth.js';
import { DEFAULT_TENANT_ID, newId } from '../../src/core/ids.js';
import { TenantRepository } from '../../src/store/tenant-repository.js';
import { REPO_ROOT, startInProcessServer, type ApiResponse, type InProcessServer } from '../helpers/server.js';
import { documentedRoutes, type OpenApiDoc } from './api-kit.js';

/**
 * The role × route table of the README ("## Roles"), asserted on every route of /openapi.json with
 * every role, through the real server. "Allowed" is any answer but 401/403 (a 400/404 is fine: the
 * body and the resource are looked at after authorization); a public route is reached without a
 * token and never answers UNAUTHORIZED or FORBIDDEN.
 */
const ROLES = ['admin', 'member', 'reader', 'agent'] as const;
type Role = typeof ROLES[number];
type Verdict = 'allowed' | 'forbidden' | 'public' | 'own host';
interface Row { readonly actions: string; readonly patterns: readonly { method: string; path: RegExp; text: string }[]; readonly verdicts: Record<Role, Verdict> }

const CELL: Record<string, Verdict> = { '✓': 'allowed', '–': 'forbidden', public: 'public', 'own host': 'own host' };

/** The rows of the README's role table, in order. */
function readRoleTable(): Row[] {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## Roles$/m)[1]?.split(/^## /m)[0];
  if (!section) throw new Error('README.md has no "## Roles" section');
  const lines = section.split('\n').filter((l) => l.startsWith('|'));
  const header = (lines[0] ?? '').split('|').map((c) => c.trim()).slice(1, -1);
  expect(header).toEqual(['actions', 'routes', ...ROLES]);
  return lines.slice(2).map((line) => {
    const cells = line.split('|').map((c) => c.trim()).slice(1, -1);
    const patterns = [...(cells[1] ?? '').matchAll(/`([A-Z*]+) (\/[^`]*)`/g)].map((m) => ({
      method: m[1] ?? '',
      path: new RegExp(`^${(m[2] ?? '').split('*').map((p) => p.replace(/[.?+^$()[\]{}|\\]/g, '\\$&')).join('.*')}$`),
      text: `${m[1] ?? ''} ${m[2] ?? ''}`,
    }));
    const verdicts = Object.fromEntries(ROLES.map((r, i) => {
      const v = CELL[cells[2 + i] ?? ''];
      if (!v) throw new Error(`README role table: "${cells[2 + i] ?? ''}" in row "${cells[0] ?? ''}" is not one of ${Object.keys(CELL).join(' ')}`);
      return [r, v];
    })) as Record<Role, Verdict>;
    expect(patterns.length, `row "${cells[0] ?? ''}" names routes`).toBeGreaterThan(0);
    return { actions: cells[0] ?? '', patterns, verdicts };
  });
}

function rowOf(rows: readonly Row[], method: string, path: string): { row: Row; pattern: string } | undefined {
  for (const row of rows) {
    const p = row.patterns.find((x) => (x.method === '*' || x.method === method) && x.path.test(path));
    if (p) return { row, pattern: p.text };
  }
  return undefined;
}

const codeOf = (r: ApiResponse): unknown => (r.body as { code?: unknown } | undefined)?.code;

describe('roles: every route of /openapi.json, every role, as the README table says', () => {
  let s: InProcessServer;
  let doc: OpenApiDoc;
  const tokens = {} as Record<Role | 'unknown', string>;
  const repo = new TenantRepository();
  const agentHost = 'hv-roles';

  const insertToken = async (name: string, role: string): Promise<string> => {
    const token = `stw_${randomBytes(24).toString('base64url')}`;
    await repo.insertToken(s.server.store.db, { id: newId('token'), tenantId: DEFAULT_TENANT_ID, name, token, role });
    return token;
  };

  beforeAll(async () => {
    s = await startInProcessServer();
    doc = await s.api.ok<OpenApiDoc>('GET', '/openapi.json', 200, { token: null });
    tokens.admin = s.token;
    tokens.member = await insertToken('member1', 'member');
    tokens.reader = await insertToken('reader1', 'reader');
    tokens.unknown = await insertToken('user1', 'user');
    await s.api.ok('POST', '/v1/hosts', 201, { body: { name: agentHost } });
    const enroll = await s.api.ok<{ token: string }>('POST', `/v1/hosts/${agentHost}/enroll-token`, 200, { body: {} });
    tokens.agent = (await s.api.ok<{ credential: string }>('POST', `/v1/hosts/${agentHost}/agent-credential`, 200, { body: { token: enroll.token }, token: null })).credential;
  });
  afterAll(async () => { await s.close(); });

  /** One request to a route with the placeholders filled (the agent's own host where a route names a host). */
  const call = (method: string, path: string, token: string | null, host = 'x'): Promise<ApiResponse> => {
    const concrete = path.replace(/\{(ref|host)\}/g, (_m, name: string) => (path.startsWith('/v1/agents/') || name === 'host' ? host : 'x')).replace(/\{[^}]+\}/g, 'x');
    const withBody = method === 'POST' || method === 'PATCH' || method === 'PUT';
    return s.api.request(method, concrete, { token, ...(withBody ? { body: {} } : {}) });
  };

  it('puts every documented route in exactly the row the README names, and every row matches a route', () => {
    const rows = readRoleTable();
    const routes = documentedRoutes(doc);
    expect(routes.length).toBeGreaterThan(40);
    const missing = routes.filter((r) => !rowOf(rows, r.method, r.path)).map((r) => `${r.method} ${r.path}`);
    expect(missing, 'routes missing from the README role table').toEqual([]);
    const used = new Set(routes.map((r) => rowOf(rows, r.method, r.path)?.pattern));
    const dead = rows.flatMap((r) => r.patterns.map((p) => p.text)).filter((p) => !used.has(p));
    expect(dead, 'README role table patterns that match no route').toEqual([]);
  });

  it('answers each role on each route as the table says', async () => {
    const rows = readRoleTable();
    const wrong: string[] = [];
    for (const { method, path } of documentedRoutes(doc)) {
      const hit = rowOf(rows, method, path);
      if (!hit) continue; // reported by the test above
      for (const role of ROLES) {
        const verdict = hit.row.verdicts[role];
        const r = await call(method, path, verdict === 'public' ? null : tokens[role], agentHost);
        const refused = verdict === 'public' ? codeOf(r) === 'UNAUTHORIZED' || codeOf(r) === 'FORBIDDEN' : r.status === 401 || r.status === 403;
        const wantRefused = verdict === 'forbidden';
        if (refused !== wantRefused) wrong.push(`${role} ${method} ${path}: expected ${verdict}, got ${String(r.status)} ${r.text.slice(0, 200)}`);
        if (wantRefused && (r.status !== 403 || codeOf(r) !== 'FORBIDDEN')) wrong.push(`${role} ${method} ${path}: refused with ${String(r.status)} ${String(codeOf(r))}, not 403 FORBIDDEN`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('refuses an unknown role everywhere, and no token anywhere but the public routes', async () => {
    const rows = readRoleTable();
    const wrong: string[] = [];
    for (const { method, path } of documentedRoutes(doc)) {
      if (rowOf(rows, method, path)?.row.verdicts.admin === 'public') continue;
      const ghost = await call(method, path, tokens.unknown, agentHost);
      if (ghost.status !== 403 || codeOf(ghost) !== 'FORBIDDEN') wrong.push(`role "user" ${method} ${path}: ${String(ghost.status)} ${ghost.text.slice(0, 200)}`);
      const anonymous = await call(method, path, null, agentHost);
      if (anonymous.status !== 401) wrong.push(`no token ${method} ${path}: ${String(anonymous.status)}`);
    }
    expect(wrong).toEqual([]);
  });

  it('says which permission is needed and that an admin can grant it', async () => {
    const r = await s.api.request('POST', '/v1/backends', { token: tokens.member, body: { name: 'evil', driver: 'dir:///' } });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ code: 'FORBIDDEN', details: { permission: 'system.admin', role: 'member' } });
    expect((r.body as { message: string }).message).toMatch(/system\.admin.*admin can grant/);
    const ghost = await s.api.request('GET', '/v1/volumes', { token: tokens.unknown });
    expect(ghost.body).toMatchObject({ code: 'FORBIDDEN', details: { permission: 'tenant.read' } });
    expect((ghost.body as { message: string }).message).toMatch(/not one this server knows.*tenant\.read.*admin can grant/);
    expect(ghost.text).not.toContain(tokens.unknown);
  });

  it('refuses a forbidden role before reading its body: malformed JSON, a wrong content type, a wrong field type are all 403', async () => {
    for (const [rawBody, contentType] of [['{not json', 'application/json'], ['plain', 'text/plain'], ['{"name": true}', 'application/json']] as const) {
      const r = await s.api.request('POST', '/v1/volumes', { token: tokens.reader, rawBody, contentType });
      expect(r.status, rawBody).toBe(403);
      expect(codeOf(r)).toBe('FORBIDDEN');
    }
    const r = await s.api.request('POST', '/v1/classes', { token: tokens.member, body: { name: 42 } });
    expect(r.status).toBe(403);
    // The same bad bodies from a role that may call the route are validation errors.
    expect((await s.api.request('POST', '/v1/volumes', { token: tokens.member, rawBody: '{not json', contentType: 'application/json' })).status).toBe(400);
  });

  it('keeps a reader from a grant\'s connection info and an agent to its own host', async () => {
    await s.api.ok('POST', '/v1/volumes?wait=true', 200, { token: tokens.member, body: { name: 'rv1', sizeBytes: 1024 ** 2 } });
    // No grant exists: a member gets past authorization to the 404, a reader never does.
    expect(codeOf(await s.api.request('GET', `/v1/volumes/rv1/grants/${agentHost}/connection`, { token: tokens.member }))).toMatch(/NOT_FOUND/);
    expect(codeOf(await s.api.request('GET', `/v1/volumes/rv1/grants/${agentHost}/connection`, { token: tokens.reader }))).toBe('FORBIDDEN');
    expect((await s.api.request('GET', '/v1/volumes/rv1/grants', { token: tokens.reader })).status).toBe(200);
    expect((await s.api.request('GET', '/v1/volumes/rv1', { token: tokens.reader })).status).toBe(200);
    // The agent: its own host only, and nothing else even with a permission its role has.
    expect(codeOf(await s.api.request('GET', '/v1/volumes/rv1/grants/other-host/connection', { token: tokens.agent }))).toBe('FORBIDDEN');
    expect(codeOf(await s.api.request('POST', '/v1/agents/other-host/report', { token: tokens.agent, body: {} }))).toBe('FORBIDDEN');
  });
});

describe('the startup check: a route without a declared permission stops the server', () => {
  const build = async (routes: (app: FastifyInstance) => void): Promise<void> => {
    const check = new RoutePermissionCheck();
    const app = Fastify();
    app.addHook('onRoute', (r) => { check.record(r); });
    await app.register(async (v1) => {
      v1.addHook('onRoute', (r) => { check.markAuthenticated(r); });
      routes(v1);
    }, { prefix: '/v1' });
    try {
      check.verify();
    } finally {
      await app.close();
    }
  };

  it('throws listing each route without a permission, with an unknown one, or public inside the bearer scope', async () => {
    await expect(build((v1) => {
      v1.get('/fine', { config: { permission: 'tenant.read' } }, () => ({}));
      v1.get('/bare', () => ({}));
      v1.post('/typo', { config: { permission: 'tenant.wrte' as 'tenant.write' } }, () => ({}));
      v1.post('/open', { config: { permission: 'public' } }, () => ({}));
    })).rejects.toThrow(/GET \/v1\/bare \(permission: none\).*POST \/v1\/typo \(permission: "tenant.wrte"\).*POST \/v1\/open \(permission: "public"\)/);
    await expect(build((v1) => { v1.get('/fine', { config: { permission: 'tenant.read' } }, () => ({})); })).resolves.toBeUndefined();
  });
});
