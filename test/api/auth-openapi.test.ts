import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInjectServer, type InjectServer } from '../helpers/inject.js';
import { AUTH_FAILURE_LIMIT, AUTH_FAILURE_WINDOW_MS } from '../../src/api/auth-limiter.js';
import { concretePath, documentedRoutes, expectError, servedRoutes, type OpenApiDoc } from './api-kit.js';

describe('API authentication and OpenAPI', () => {
  let s: InjectServer;
  let doc: OpenApiDoc;

  beforeAll(async () => {
    s = await startInjectServer();
    doc = await s.api.ok<OpenApiDoc>('GET', '/openapi.json', 200, { token: null });
  });
  afterAll(async () => {
    await s.close();
  });

  it('serves /healthz and /openapi.json without a token', async () => {
    const h = await s.api.request('GET', '/healthz', { token: null });
    expect(h.status).toBe(200);
    expect(h.body).toMatchObject({ ok: true });
    expect(Object.keys(doc.paths).length).toBeGreaterThan(5);
  });

  it('documents every route the app serves, and nothing it does not', () => {
    const served = servedRoutes(s.server.app).filter((r) => r.path.startsWith('/v1/'));
    expect(served.length).toBeGreaterThan(10);
    expect(documentedRoutes(doc)).toEqual(served);
    // The routes this issue is about are there.
    for (const r of ['POST /v1/volumes', 'GET /v1/volumes', 'POST /v1/volumes/{ref}/resize', 'DELETE /v1/volumes/{ref}', 'POST /v1/backends',
      'DELETE /v1/backends/{ref}', 'POST /v1/backends/{ref}/refresh', 'GET /v1/operations/{id}', 'GET /v1/events']) {
      expect(served.map((x) => `${x.method} ${x.path}`)).toContain(r);
    }
  });

  it('describes every route with a summary and every error response with the Error schema', () => {
    const errorSchema = doc.components?.schemas?.Error;
    expect(errorSchema?.required).toEqual(expect.arrayContaining(['code', 'message', 'details']));
    for (const { method, path } of documentedRoutes(doc)) {
      const op = doc.paths[path]?.[method.toLowerCase()];
      expect(op?.summary, `${method} ${path} summary`).toBeTruthy();
      const responses = op?.responses ?? {};
      const errorStatuses = Object.keys(responses).filter((st) => Number(st) >= 400);
      expect(errorStatuses, `${method} ${path} documents 400 and 401`).toEqual(expect.arrayContaining(['400', '401']));
      for (const st of errorStatuses) {
        expect(responses[st]?.content?.['application/json']?.schema?.$ref, `${method} ${path} ${st}`).toBe('#/components/schemas/Error');
      }
      const ok = Object.keys(responses).filter((st) => Number(st) < 400);
      expect(ok.length, `${method} ${path} documents its success`).toBeGreaterThan(0);
    }
  });

  it('answers 401 UNAUTHORIZED on every /v1 route without a token, with a wrong one, or with another scheme', async () => {
    const routes = documentedRoutes(doc);
    // Each wrong token from its own address: one address is refused with 429 after AUTH_FAILURE_LIMIT (tested below).
    let n = 0;
    const source = (): string => `10.99.250.${String(++n % 250)}`;
    const opsBefore = await s.api.ok<{ items: unknown[] }>('GET', '/v1/operations', 200);
    // A node's enrollment is authenticated by its one-time token alone (test/nodes/node-run.test.ts).
    for (const { method, path } of routes.filter((r) => r.path !== '/v1/nodes/{ref}/enroll')) {
      const url = concretePath(path);
      // An agent's enrollment exchange takes no bearer token: its one-time token in the body is refused alike.
      if (path === '/v1/hosts/{ref}/agent-credential') {
        expectError(await s.api.request(method, url, { body: {}, token: null, remoteAddress: source() }), 401, 'ENROLLMENT_INVALID');
        expectError(await s.api.request(method, url, { body: {}, token: s.token, remoteAddress: source() }), 401, 'ENROLLMENT_INVALID');
        continue;
      }
      const opts = method === 'GET' || method === 'DELETE' ? {} : { body: {} };
      const none = await s.api.request(method, url, { ...opts, token: null });
      expectError(none, 401, 'UNAUTHORIZED');
      const wrong = await s.api.request(method, url, { ...opts, token: `${s.token}x`, remoteAddress: source() });
      expectError(wrong, 401, 'UNAUTHORIZED');
      const basic = await s.api.request(method, url, { ...opts, token: null, headers: { authorization: `Basic ${Buffer.from(`admin:${s.token}`).toString('base64')}` } });
      expectError(basic, 401, 'UNAUTHORIZED');
    }
    // Nothing happened while unauthorized.
    const opsAfter = await s.api.ok<{ items: unknown[] }>('GET', '/v1/operations', 200);
    expect(opsAfter.items).toEqual(opsBefore.items);
  });

  it('refuses an address with 429 and Retry-After once it failed AUTH_FAILURE_LIMIT times, whatever token it sends next; other addresses go on', async () => {
    const guesser = '10.99.251.1';
    // A missing token is not a guess: never counted.
    for (let i = 0; i < AUTH_FAILURE_LIMIT + 5; i++) expectError(await s.api.request('GET', '/v1/volumes', { token: null, remoteAddress: guesser }), 401, 'UNAUTHORIZED');
    for (let i = 0; i < AUTH_FAILURE_LIMIT; i++) {
      expectError(await s.api.request('GET', '/v1/volumes', { token: `stw_guess${String(i)}`, remoteAddress: guesser }), 401, 'UNAUTHORIZED');
    }
    const limited = await s.api.request('GET', '/v1/volumes', { token: 'stw_one-more-guess', remoteAddress: guesser });
    expectError(limited, 429, 'RATE_LIMITED');
    const retryAfter = (limited.body as { details: { retryAfterSeconds: number } }).details.retryAfterSeconds;
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(AUTH_FAILURE_WINDOW_MS / 1000);
    // Even the right token gets no answer from that address until the window ends: guessing learns nothing.
    expectError(await s.api.request('GET', '/v1/volumes', { remoteAddress: guesser }), 429, 'RATE_LIMITED');
    // Enrollment tokens are guesses too, counted alike.
    expectError(await s.api.request('POST', '/v1/nodes/sn9/enroll', { body: { token: 'stw1.node.AAAAAAAAAAAAAAAAAAAA.plain', certPem: 'x' }, token: null, remoteAddress: guesser }), 429, 'RATE_LIMITED');
    await s.api.ok('GET', '/v1/volumes', 200, { remoteAddress: '10.99.251.2' });
  });

  it('sends Retry-After with a 429', async () => {
    const guesser = '10.99.251.3';
    for (let i = 0; i < AUTH_FAILURE_LIMIT; i++) await s.api.request('GET', '/v1/volumes', { token: `stw_g${String(i)}`, remoteAddress: guesser });
    const res = await s.api.app.inject({ method: 'GET', url: '/v1/volumes', headers: { authorization: 'Bearer stw_x' }, remoteAddress: guesser });
    expect(res.statusCode).toBe(429);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  });

  it('never echoes the token in an error', async () => {
    const wrong = await s.api.request('GET', '/v1/volumes', { token: 'stw_secret-looking-value' });
    expect(wrong.text).not.toContain('stw_secret-looking-value');
  });

  it('answers unknown routes with 404 NOT_FOUND in the error shape', async () => {
    expectError(await s.api.request('GET', '/v1/nothing-here'), 404, 'NOT_FOUND');
  });
});
