import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInjectServer, type InjectServer } from '../helpers/inject.js';
import { documentedRoutes, expectError, inject, type OpenApiDoc } from './api-kit.js';

/**
 * Idempotency-Key on every mutating route: a retry replays the first answer, a different request
 * with the same key is 409 IDEMPOTENCY_CONFLICT and changes nothing.
 */
const MiB = 1024 ** 2;
interface Host { id: string; name: string }
interface PageT { items: { id: string; name: string }[] }

describe('Idempotency-Key', () => {
  let s: InjectServer;
  const key = (k: string): Record<string, string> => ({ 'idempotency-key': `${k}-${String(process.pid)}` });
  const names = async (path: string): Promise<string[]> => (await s.api.ok<PageT>('GET', `${path}?limit=1000`, 200)).items.map((x) => x.name).sort();

  beforeAll(async () => { s = await startInjectServer({ operationPollMs: 20 }); });
  afterAll(async () => { await s.close(); });

  it('replays the first answer of a route without an operation (POST /v1/hosts), and creates one host', async () => {
    const first = await inject(s, 'POST', '/v1/hosts', { body: { name: 'idem-h1' }, headers: key('h1') });
    expect(first.status, first.text).toBe(201);
    const again = await inject(s, 'POST', '/v1/hosts', { body: { name: 'idem-h1' }, headers: key('h1') });
    expect(again.status, again.text).toBe(201);
    expect((again.body as Host).id).toBe((first.body as Host).id);
    expect(await names('/v1/hosts')).toEqual(['idem-h1']);
  });

  it('keeps no answer of a grant (it carries the CHAP secret): a retry grants again and answers the same live grant', async () => {
    await s.api.ok('POST', '/v1/hosts', 201, { body: { name: 'idem-gh' } });
    await s.api.ok('POST', '/v1/volumes?wait=true', 200, { body: { name: 'idem-gv', sizeBytes: MiB } });
    const first = await inject(s, 'POST', '/v1/volumes/idem-gv/grants?wait=true', { body: { host: 'idem-gh' }, headers: key('grant') });
    expect(first.status, first.text).toBe(200);
    const again = await inject(s, 'POST', '/v1/volumes/idem-gv/grants?wait=true', { body: { host: 'idem-gh' }, headers: key('grant') });
    expect(again.status, again.text).toBe(200);
    const id = (r: typeof first): string => (r.body as { grant: { id: string } }).grant.id;
    expect(id(again)).toBe(id(first));
    const kept = await s.server.store.db.selectFrom('idempotency_keys').selectAll().where('key', '=', key('grant')['idempotency-key'] ?? '').execute();
    expect(kept.map((r) => r.response)).toEqual(kept.map(() => null));
    await s.api.ok('DELETE', '/v1/volumes/idem-gv/grants/idem-gh?wait=true', 200);
    await s.api.ok('DELETE', '/v1/volumes/idem-gv?wait=true', 200);
    await s.api.request('DELETE', '/v1/hosts/idem-gh');
  });

  it('refuses the same key with another body or on another route with 409, changing nothing', async () => {
    const before = await names('/v1/hosts');
    const otherBody = await inject(s, 'POST', '/v1/hosts', { body: { name: 'idem-h2' }, headers: key('h1') });
    expect(expectError(otherBody, 409, 'IDEMPOTENCY_CONFLICT').message).toContain('different request');
    expectError(await inject(s, 'POST', '/v1/classes', { body: { name: 'idem-c1' }, headers: key('h1') }), 409, 'IDEMPOTENCY_CONFLICT');
    expectError(await inject(s, 'DELETE', '/v1/hosts/idem-h1', { headers: key('h1') }), 409, 'IDEMPOTENCY_CONFLICT');
    expect(await names('/v1/hosts')).toEqual(before);
    expect(await names('/v1/classes')).toEqual([]);
  });

  it('refuses a volume create whose body differs under a used key (it was silently replayed)', async () => {
    const first = await s.api.ok<{ volume: { id: string } }>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'idem-v1', sizeBytes: MiB }, headers: key('v1') });
    const again = await s.api.ok<{ volume: { id: string } }>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'idem-v1', sizeBytes: MiB }, headers: key('v1') });
    expect(again.volume.id).toBe(first.volume.id);
    expectError(await inject(s, 'POST', '/v1/volumes?wait=true', { body: { name: 'idem-v2', sizeBytes: 2 * MiB }, headers: key('v1') }), 409, 'IDEMPOTENCY_CONFLICT');
    expect(await names('/v1/volumes')).toEqual(['idem-v1']);
  });

  it('takes over the unanswered claim of a request whose process died (its lease ran out) instead of waiting for it', async () => {
    const db = s.server.store.db;
    const tenant = (await db.selectFrom('tenants').select('id').executeTakeFirstOrThrow()).id;
    const body = { name: 'idem-h6' };
    const k = key('h6')['idempotency-key'] ?? '';
    // What a server killed between claiming the key and answering leaves behind: a claim, no answer,
    // a lease nobody renews any more (it ran out a second ago).
    const fp = createHash('sha256').update(JSON.stringify(['POST', '/v1/hosts', body])).digest('hex');
    const past = new Date(Date.now() - 1000).toISOString();
    await db.insertInto('idempotency_keys').values({ tenant_id: tenant, key: k, fingerprint: fp, status_code: null, response: null, created_at: past, claim_expires_at: past }).execute();
    const retry = await inject(s, 'POST', '/v1/hosts', { body, headers: key('h6') });
    expect(retry.status, retry.text).toBe(201);
    const row = await db.selectFrom('idempotency_keys').selectAll().where('key', '=', k).executeTakeFirstOrThrow();
    expect(row.status_code).toBe(201);
    expect(await names('/v1/hosts')).toContain('idem-h6');
  });

  it('releases the key of a request that failed, so a corrected retry may use it', async () => {
    expectError(await inject(s, 'POST', '/v1/hosts', { body: { name: 'idem-h3', addresses: ['not-an-ip'] }, headers: key('h3') }), 400, 'VALIDATION_FAILED');
    expect((await inject(s, 'POST', '/v1/hosts', { body: { name: 'idem-h3', addresses: ['10.99.203.3'] }, headers: key('h3') })).status).toBe(201);
  });

  it('replays a 204 (DELETE) as a 204, and concurrent retries get one answer and one host', async () => {
    await s.api.ok('POST', '/v1/hosts', 201, { body: { name: 'idem-h4' } });
    for (let i = 0; i < 2; i++) expect((await inject(s, 'DELETE', '/v1/hosts/idem-h4', { headers: key('h4-del') })).status).toBe(204);
    const answers = await Promise.all(Array.from({ length: 5 }, () => s.api.request('POST', '/v1/hosts', { body: { name: 'idem-h5' }, headers: key('h5') })));
    for (const a of answers) expect(a.status, a.text).toBe(201);
    expect(new Set(answers.map((a) => (a.body as Host).id)).size).toBe(1);
    expect((await names('/v1/hosts')).filter((n) => n === 'idem-h5')).toHaveLength(1);
  });

  it('is documented on every mutating route, with its 409', async () => {
    const doc = (await inject(s, 'GET', '/openapi.json')).body as OpenApiDoc & { paths: Record<string, Record<string, { parameters?: { in: string; name: string }[] }>> };
    // The two token-authenticated exchanges (a node's and an agent's one-time enrollment token) take no
    // bearer, so they have no tenant to keep keys under; a retry of a spent token is refused by design.
    const tokenAuthenticated = new Set(['/v1/nodes/{ref}/enroll', '/v1/hosts/{ref}/agent-credential']);
    const mutating = documentedRoutes(doc).filter((r) => r.method !== 'GET' && !tokenAuthenticated.has(r.path));
    expect(mutating.length).toBeGreaterThan(20);
    for (const r of mutating) {
      const op = doc.paths[r.path]?.[r.method.toLowerCase()];
      expect(op?.parameters?.some((p) => p.in === 'header' && p.name === 'idempotency-key'), `${r.method} ${r.path}`).toBe(true);
      expect(Object.keys(op?.responses ?? {}), `${r.method} ${r.path}`).toContain('409');
    }
  });
});
