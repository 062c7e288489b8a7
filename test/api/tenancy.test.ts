import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TENANT_ID, newId } from '../../src/core/ids.js';
import type { CreatedToken, Tenant, Token, User, Whoami } from '../../src/core/schemas/tenant-schema.js';
import { hashToken } from '../../src/core/token-hash.js';
import { TenantRepository } from '../../src/store/tenant-repository.js';
import { InjectClient, startInjectServer, type InjectServer } from '../helpers/inject.js';
import type { ApiResponse } from '../helpers/server.js';
import { makeTenantUser } from '../helpers/tenants.js';
import { expectError, type OpenApiDoc } from './api-kit.js';

const MiB = 1024 ** 2;

/** Every file under `dir` (the store, its journal, keys), for a search of their bytes. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? filesUnder(p) : e.isFile() ? [p] : [];
  });
}

/**
 * Tenants, users and API tokens through the real app (`app.inject()`): expiry, revocation (at once,
 * despite the auth cache), scopes, refused escalations, tenants named in bodies or headers, tokens
 * kept only as hashes, last use, whoami, and the admin's user and tenant views. Every refusal is
 * checked for its stable code and for leaving the store as it was.
 */
describe('tenancy over HTTP', () => {
  let s: InjectServer;
  const logLines: string[] = [];
  const repo = new TenantRepository();
  let alice: InjectClient;
  let aliceToken: string;
  let tenantB: Tenant;

  const as = (token: string): InjectClient => new InjectClient(s.server.app, token);
  const codeOf = (r: ApiResponse): unknown => (r.body as { code?: unknown } | undefined)?.code;

  /** What a refusal must leave as it was: every tenant, user, token (but its last use), volume, snapshot, operation and quota row. */
  async function storeRows(): Promise<string> {
    const db = s.server.store.db;
    return JSON.stringify(await Promise.all([
      db.selectFrom('tenants').selectAll().orderBy('id').execute(),
      db.selectFrom('users').selectAll().orderBy('id').execute(),
      db.selectFrom('api_tokens').select(['id', 'tenant_id', 'name', 'token_hash', 'role', 'user_id', 'scope', 'expires_at', 'revoked_at']).orderBy('id').execute(),
      db.selectFrom('volumes').select(['id', 'tenant_id', 'name', 'state', 'size_bytes']).orderBy('id').execute(),
      db.selectFrom('snapshots').select(['id', 'tenant_id', 'name']).orderBy('id').execute(),
      db.selectFrom('operations').select(['id', 'tenant_id', 'state']).orderBy('id').execute(),
      db.selectFrom('quotas').selectAll().execute(),
    ]));
  }

  /** A token inserted straight into the store (the API allows no expiry under a minute). */
  async function insertTokenOf(user: string, name: string, expiresAt: string): Promise<string> {
    const u = await s.api.ok<User>('GET', `/v1/users/${user}`, 200);
    const token = `stw_${randomBytes(24).toString('base64url')}`;
    await repo.insertToken(s.server.store.db, { id: newId('token'), tenantId: u.tenantId ?? DEFAULT_TENANT_ID, name, token, role: u.role, userId: u.id, expiresAt });
    return token;
  }

  beforeAll(async () => {
    // Every log line at debug, to search for token secrets.
    const sink = new Writable({ write(chunk: Buffer, _enc, done) { logLines.push(chunk.toString('utf8')); done(); } });
    s = await startInjectServer({}, pino({ level: 'debug' }, sink));
    const a = await makeTenantUser(s.api, { tenant: 'tn-a', user: 'alice', role: 'member' });
    aliceToken = a.token;
    alice = as(a.token);
    await makeTenantUser(s.api, { tenant: 'tn-a', user: 'rita', role: 'reader' });
    await makeTenantUser(s.api, { tenant: 'tn-b', user: 'bert', role: 'member' });
    tenantB = await s.api.ok<Tenant>('GET', '/v1/tenants/tn-b', 200);
    await alice.ok('POST', '/v1/volumes?wait=true', 200, { body: { name: 'a-vol', sizeBytes: MiB } });
  });
  afterAll(async () => {
    await s.close();
  });

  it('shows a token\'s secret once: only its hash is kept, never in a list, a show, the store\'s files or a log line', async () => {
    // With an Idempotency-Key, whose answers are otherwise kept in the store to replay.
    const idem = { headers: { 'idempotency-key': 'create-laptop' } };
    const created = await s.api.ok<CreatedToken>('POST', '/v1/tokens', 201, { body: { name: 'laptop', user: 'alice' }, ...idem });
    const { secret } = created;
    // A retry runs again (the secret is not kept to replay): the name is taken.
    const retry = await s.api.request('POST', '/v1/tokens', { body: { name: 'laptop', user: 'alice' }, ...idem });
    expectError(retry, 409, 'NAME_TAKEN');
    expect(retry.text).not.toContain(secret);
    expect(secret).toMatch(/^stw_[A-Za-z0-9_-]{32}$/);
    expect(created.token).toMatchObject({ name: 'laptop', user: 'alice', role: 'member', scope: null, state: 'active', expiresAt: null, revokedAt: null, lastUsedAt: null });
    expect(Object.keys(created.token)).not.toContain('secret');
    expect((await as(secret).ok<Whoami>('GET', '/v1/whoami', 200)).token.name).toBe('laptop');
    for (const [method, path, token] of [['GET', '/v1/tokens?user=alice', s.token], ['GET', '/v1/tokens', secret], ['GET', '/v1/users/alice', s.token], ['GET', '/v1/users', s.token], ['GET', '/v1/whoami', secret]] as const) {
      const r = await s.api.request(method, path, { token });
      expect(r.status, r.text).toBe(200);
      expect(r.text, `${method} ${path}`).not.toContain(secret);
    }
    const row = await s.server.store.db.selectFrom('api_tokens').selectAll().where('id', '=', created.token.id).executeTakeFirstOrThrow();
    expect(row.token_hash).toBe(hashToken(secret));
    expect(JSON.stringify(await s.server.store.db.selectFrom('api_tokens').selectAll().execute())).not.toContain(secret);
    const files = filesUnder(s.dataDir);
    expect(files.some((f) => statSync(f).size > 0)).toBe(true);
    for (const f of files) expect(readFileSync(f).includes(secret), f).toBe(false);
    // The log was written (so its search can fail) and holds no secret.
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('')).not.toContain(secret);
    expect(logLines.join('')).not.toContain(aliceToken);
  });

  it('answers whoami with the user, tenant, role and token', async () => {
    const me = await alice.ok<Whoami>('GET', '/v1/whoami', 200);
    const tn = await s.api.ok<Tenant>('GET', '/v1/tenants/tn-a', 200);
    expect(me).toEqual({ user: 'alice', kind: 'user', tenant: 'tn-a', tenantId: tn.id, role: 'member', token: { id: expect.stringMatching(/^tok/) as unknown, name: 'first', expiresAt: null } });
    expect(await s.api.ok<Whoami>('GET', '/v1/whoami', 200)).toMatchObject({ user: 'admin', kind: 'user', tenant: 'default', role: 'admin', token: { name: 'bootstrap' } });
    const svc = await makeTenantUser(s.api, { tenant: 'tn-a', user: 'ci-bot', role: 'member', kind: 'service' });
    expect(await as(svc.token).ok<Whoami>('GET', '/v1/whoami', 200)).toMatchObject({ user: 'ci-bot', kind: 'service', tenant: 'tn-a', role: 'member' });
    const r = await s.api.request('GET', '/v1/whoami', { token: 'stw_not-a-token' });
    expectError(r, 401, 'UNAUTHORIZED');
  });

  it('records a token\'s last use', async () => {
    const created = await s.api.ok<CreatedToken>('POST', '/v1/tokens', 201, { body: { name: 'last-use', user: 'alice' } });
    const find = async (): Promise<Token | undefined> => (await s.api.ok<{ items: Token[] }>('GET', '/v1/tokens?user=alice', 200)).items.find((t) => t.id === created.token.id);
    expect((await find())?.lastUsedAt).toBeNull();
    await as(created.secret).ok('GET', '/v1/volumes', 200);
    const used = (await find())?.lastUsedAt;
    expect(typeof used).toBe('string');
    expect(Date.parse(used ?? '')).toBeGreaterThanOrEqual(Date.parse(created.token.createdAt));
  });

  it('refuses an expired token, and does not trust its cached check past the expiry', async () => {
    const before = await storeRows();
    for (const expiresInSeconds of [0, 59, -5, 366 * 24 * 3600 + 1]) {
      expectError(await s.api.request('POST', '/v1/tokens', { body: { name: 'bad-ttl', user: 'alice', expiresInSeconds } }), 400, 'VALIDATION_FAILED');
    }
    expect(await storeRows()).toBe(before);
    const short = await s.api.ok<CreatedToken>('POST', '/v1/tokens', 201, { body: { name: 'short', user: 'alice', expiresInSeconds: 60 } });
    expect(Date.parse(short.token.expiresAt ?? '') - Date.now()).toBeLessThanOrEqual(60_000);
    expect((await as(short.secret).ok<Whoami>('GET', '/v1/whoami', 200)).token.expiresAt).toBe(short.token.expiresAt);

    const past = await insertTokenOf('alice', 'past', new Date(Date.now() - 1000).toISOString());
    const refused = expectError(await s.api.request('GET', '/v1/whoami', { token: past }), 401, 'UNAUTHORIZED');
    expect(refused.message).toMatch(/expired/);
    expect((await s.api.ok<{ items: Token[] }>('GET', '/v1/tokens?user=alice', 200)).items.find((t) => t.name === 'past')?.state).toBe('expired');

    // A token that works once (and is cached) then expires: refused as soon as its time passes, not
    // up to the cache's 5 s later. The window is 1.5 s; a run too slow to use it inside that retries.
    for (let attempt = 0; ; attempt++) {
      const expiresAt = Date.now() + 1500 * (attempt + 1);
      const token = await insertTokenOf('alice', `soon-${String(attempt)}`, new Date(expiresAt).toISOString());
      const first = await s.api.request('GET', '/v1/whoami', { token });
      if (Date.now() >= expiresAt) {
        expect(attempt, 'could not use a token inside its expiry window three times').toBeLessThan(2);
        continue;
      }
      expect(first.status, first.text).toBe(200);
      await new Promise((r) => setTimeout(r, expiresAt - Date.now() + 50));
      expectError(await s.api.request('GET', '/v1/whoami', { token }), 401, 'UNAUTHORIZED');
      break;
    }
  });

  it('refuses a revoked token at once, although it was just used and cached', async () => {
    const rv = await s.api.ok<CreatedToken>('POST', '/v1/tokens', 201, { body: { name: 'revoke-me', user: 'alice' } });
    await as(rv.secret).ok('GET', '/v1/whoami', 200);
    // Revoked by its user, by name, with another token of hers.
    const r = await alice.request('DELETE', '/v1/tokens/revoke-me');
    expect(r.status, r.text).toBe(204);
    expectError(await s.api.request('GET', '/v1/whoami', { token: rv.secret }), 401, 'UNAUTHORIZED');
    const listed = (await alice.ok<{ items: Token[] }>('GET', '/v1/tokens', 200)).items.find((t) => t.id === rv.token.id);
    expect(listed).toMatchObject({ state: 'revoked', revokedAt: expect.any(String) as unknown });

    // By an admin, by id.
    const byId = await s.api.ok<CreatedToken>('POST', '/v1/tokens', 201, { body: { name: 'by-id', user: 'alice' } });
    await as(byId.secret).ok('GET', '/v1/whoami', 200);
    expect((await s.api.request('DELETE', `/v1/tokens/${byId.token.id}`)).status).toBe(204);
    expectError(await s.api.request('GET', '/v1/whoami', { token: byId.secret }), 401, 'UNAUTHORIZED');

    // A name is free again after a revoke; revoking it by name then hits the live token, not the old one.
    const again = await alice.ok<CreatedToken>('POST', '/v1/tokens', 201, { body: { name: 'revoke-me' } });
    await as(again.secret).ok('GET', '/v1/whoami', 200);
    expectError(await alice.request('POST', '/v1/tokens', { body: { name: 'revoke-me' } }), 409, 'NAME_TAKEN');
    expect((await alice.request('DELETE', '/v1/tokens/revoke-me')).status).toBe(204);
    expectError(await s.api.request('GET', '/v1/whoami', { token: again.secret }), 401, 'UNAUTHORIZED');
  });

  it('refuses revoking someone else\'s token, which keeps working', async () => {
    const bertToken = await s.api.ok<CreatedToken>('POST', '/v1/tokens', 201, { body: { name: 'berts', user: 'bert' } });
    const before = await storeRows();
    expectError(await alice.request('DELETE', `/v1/tokens/${bertToken.token.id}`), 404, 'TOKEN_NOT_FOUND');
    expectError(await alice.request('DELETE', '/v1/tokens/berts?user=bert'), 404, 'USER_NOT_FOUND');
    expectError(await alice.request('GET', '/v1/tokens?user=bert'), 404, 'USER_NOT_FOUND');
    expectError(await s.api.request('DELETE', '/v1/tokens/no-such-token?user=bert'), 404, 'TOKEN_NOT_FOUND');
    expect(await storeRows()).toBe(before);
    await as(bertToken.secret).ok('GET', '/v1/whoami', 200);
  });

  it('lets a member\'s token scoped reader read but not write', async () => {
    const ro = await alice.ok<CreatedToken>('POST', '/v1/tokens', 201, { body: { name: 'read-only', scope: 'reader' } });
    expect(ro.token).toMatchObject({ user: 'alice', role: 'reader', scope: 'reader' });
    const reader = as(ro.secret);
    expect((await reader.ok<Whoami>('GET', '/v1/whoami', 200)).role).toBe('reader');
    expect((await reader.ok<{ items: { name: string }[] }>('GET', '/v1/volumes', 200)).items.map((v) => v.name)).toContain('a-vol');
    const before = await storeRows();
    const refused = expectError(await reader.request('POST', '/v1/volumes', { body: { name: 'ro-vol', sizeBytes: MiB } }), 403, 'FORBIDDEN');
    expect(refused.details).toMatchObject({ permission: 'tenant.write', role: 'reader' });
    expectError(await reader.request('DELETE', '/v1/volumes/a-vol'), 403, 'FORBIDDEN');
    expect(await storeRows()).toBe(before);
  });

  it('refuses every escalation, changing nothing', async () => {
    const rita = as((await s.api.ok<CreatedToken>('POST', '/v1/tokens', 201, { body: { name: 'ritas', user: 'rita' } })).secret);
    const narrowed = as((await alice.ok<CreatedToken>('POST', '/v1/tokens', 201, { body: { name: 'narrow', scope: 'reader' } })).secret);
    const before = await storeRows();
    // A member makes no users, no admin's token, and no token above its role.
    expectError(await alice.request('POST', '/v1/users', { body: { name: 'evil', role: 'admin' } }), 403, 'FORBIDDEN');
    expectError(await alice.request('POST', '/v1/users', { body: { name: 'evil', role: 'member', tenant: 'tn-a' } }), 403, 'FORBIDDEN');
    expectError(await alice.request('POST', '/v1/tokens', { body: { name: 'evil', user: 'admin' } }), 404, 'USER_NOT_FOUND');
    expectError(await alice.request('POST', '/v1/tokens', { body: { name: 'evil', user: 'bert' } }), 404, 'USER_NOT_FOUND');
    expectError(await alice.request('POST', '/v1/tokens', { body: { name: 'evil', scope: 'admin' } }), 403, 'FORBIDDEN');
    // A reader mints nothing above reader.
    expectError(await rita.request('POST', '/v1/tokens', { body: { name: 'evil', scope: 'admin' } }), 403, 'FORBIDDEN');
    expectError(await rita.request('POST', '/v1/tokens', { body: { name: 'evil', scope: 'member' } }), 403, 'FORBIDDEN');
    // A token narrowed to reader does not mint a wider one for its own user.
    expectError(await narrowed.request('POST', '/v1/tokens', { body: { name: 'evil', scope: 'member' } }), 403, 'FORBIDDEN');
    expectError(await narrowed.request('POST', '/v1/tokens', { body: { name: 'evil', scope: 'admin' } }), 403, 'FORBIDDEN');
    // Even an admin only narrows a user's role.
    expectError(await s.api.request('POST', '/v1/tokens', { body: { name: 'evil', user: 'alice', scope: 'admin' } }), 403, 'FORBIDDEN');
    // Nobody changes their own role or deletes themselves; a member cannot even try.
    const ownRole = expectError(await s.api.request('PATCH', '/v1/users/admin', { body: { role: 'member' } }), 403, 'FORBIDDEN');
    expect(ownRole.message).toMatch(/your own role/);
    expectError(await s.api.request('DELETE', '/v1/users/admin'), 403, 'FORBIDDEN');
    expectError(await alice.request('PATCH', '/v1/users/alice', { body: { role: 'admin' } }), 403, 'FORBIDDEN');
    expectError(await alice.request('DELETE', '/v1/users/alice'), 403, 'FORBIDDEN');
    expectError(await alice.request('PATCH', '/v1/tenants/tn-a', { body: { description: 'mine now' } }), 403, 'FORBIDDEN');
    expectError(await alice.request('PUT', '/v1/tenants/tn-a/quota', { body: { maxVolumes: 1000 } }), 403, 'FORBIDDEN');
    expect(await storeRows()).toBe(before);
    // What a narrowed token may still mint: one no wider than itself.
    const same = await narrowed.ok<CreatedToken>('POST', '/v1/tokens', 201, { body: { name: 'narrow-2' } });
    expect(same.token).toMatchObject({ role: 'reader', scope: 'reader' });
  });

  it('refuses a tenant named in a request body with 400, changing nothing', async () => {
    const before = await storeRows();
    const refusals: [InjectClient, string, string, unknown][] = [
      [alice, 'POST', '/v1/volumes', { name: 'b-vol', sizeBytes: MiB, tenantId: tenantB.id }],
      [alice, 'POST', '/v1/volumes', { name: 'b-vol', sizeBytes: MiB, tenant: 'tn-b' }],
      [alice, 'POST', '/v1/volumes', { name: 'b-vol', sizeBytes: MiB, tenant_id: tenantB.id }],
      [alice, 'POST', '/v1/snapshots', { volume: 'a-vol', name: 'b-snap', tenantId: tenantB.id }],
      [alice, 'POST', '/v1/placements/dry-run', { name: 'b-vol', sizeBytes: MiB, tenantId: tenantB.id }],
      [alice, 'POST', '/v1/tokens', { name: 'b-token', tenant: 'tn-b' }],
      [alice, 'POST', '/v1/tokens', { name: 'b-token', tenantId: tenantB.id }],
      [s.api, 'POST', '/v1/users', { name: 'b-user', role: 'member', tenant: 'tn-a', tenantId: tenantB.id }],
      [s.api, 'PATCH', '/v1/users/alice', { tenant: 'tn-b' }],
      [s.api, 'PATCH', '/v1/tenants/tn-a', { description: 'x', id: tenantB.id }],
      [s.api, 'PUT', '/v1/tenants/tn-a/quota', { maxVolumes: 3, tenantId: tenantB.id }],
    ];
    for (const [client, method, path, body] of refusals) {
      const r = await client.request(method, path, { body });
      expect([r.status, codeOf(r)], `${method} ${path} ${JSON.stringify(body)}: ${r.text}`).toEqual([400, 'VALIDATION_FAILED']);
    }
    expect(await storeRows()).toBe(before);
  });

  it('declares additionalProperties: false on every request body, so no route takes a field it does not name', async () => {
    const doc = await s.api.ok<OpenApiDoc & { paths: Record<string, Record<string, { requestBody?: { content?: Record<string, { schema?: Record<string, unknown> }> } }>> }>('GET', '/openapi.json', 200, { token: null });
    const open: string[] = [];
    let bodies = 0;
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const schema = op.requestBody?.content?.['application/json']?.schema;
        if (!schema) continue;
        bodies++;
        const ref = typeof schema.$ref === 'string' ? schema.$ref.split('/').pop() ?? '' : undefined;
        const resolved = (ref !== undefined ? doc.components?.schemas?.[ref] : schema) as Record<string, unknown> | undefined;
        if (resolved?.additionalProperties !== false) open.push(`${method.toUpperCase()} ${path}`);
      }
    }
    expect(bodies).toBeGreaterThan(20);
    expect(open).toEqual([]);
  });

  it('refuses a tenant named in a header with 400, changing nothing', async () => {
    const before = await storeRows();
    const headers = ['X-Tenant', 'x-tenant-id', 'X-Tenant-Name', 'X-Project-Id', 'x-project', 'X-OpenStack-Project-Id', 'X-Auth-Project-Id', 'X-Stowage-Tenant', 'X-Scope-OrgID', 'X-Grafana-Org-Id', 'x_tenant_id'];
    for (const header of headers) {
      for (const [method, path, body] of [['POST', '/v1/volumes', { name: 'h-vol', sizeBytes: MiB }], ['GET', '/v1/volumes', undefined], ['DELETE', '/v1/volumes/a-vol', undefined]] as const) {
        const r = await alice.request(method, path, { headers: { [header]: tenantB.id }, ...(body ? { body } : {}) });
        expect([r.status, codeOf(r)], `${header} ${method} ${path}: ${r.text}`).toEqual([400, 'VALIDATION_FAILED']);
        expect((r.body as { details: { header?: string } }).details.header).toBe(header.toLowerCase());
      }
    }
    expect(await storeRows()).toBe(before);
    // A header that names no tenant is no refusal.
    await alice.ok('GET', '/v1/volumes', 200, { headers: { 'x-request-id': 'abc', 'x-tenantless': '1' } });
  });

  it('lets an admin list and show users, and change a user\'s role, which bites at once', async () => {
    const all = (await s.api.ok<{ items: User[] }>('GET', '/v1/users', 200)).items;
    expect(all.map((u) => u.name)).toEqual([...all.map((u) => u.name)].sort());
    expect(all.find((u) => u.name === 'admin')).toMatchObject({ tenant: null, tenantId: null, role: 'admin', kind: 'user' });
    expect(all.find((u) => u.name === 'ci-bot')).toMatchObject({ tenant: 'tn-a', role: 'member', kind: 'service' });
    const ofA = (await s.api.ok<{ items: User[] }>('GET', '/v1/users?tenant=tn-a', 200)).items;
    expect(ofA.every((u) => u.tenant === 'tn-a')).toBe(true);
    expect(ofA.map((u) => u.name)).toEqual(expect.arrayContaining(['alice', 'rita', 'ci-bot']));
    expect(ofA.map((u) => u.name)).not.toContain('bert');
    const shown = await s.api.ok<User>('GET', '/v1/users/alice', 200);
    expect(shown).toMatchObject({ name: 'alice', tenant: 'tn-a', role: 'member', kind: 'user' });
    expect(shown.tokens).toBeGreaterThan(0);
    expect(await s.api.ok<User>('GET', `/v1/users/${shown.id}`, 200)).toEqual(shown);
    expectError(await s.api.request('GET', '/v1/users/nobody'), 404, 'USER_NOT_FOUND');
    expectError(await s.api.request('GET', '/v1/users?tenant=nowhere'), 404, 'TENANT_NOT_FOUND');

    // member → reader: alice's cached token stops writing at once.
    await alice.ok('GET', '/v1/whoami', 200);
    expect(await s.api.ok<User>('PATCH', '/v1/users/alice', 200, { body: { role: 'reader', description: 'on leave' } })).toMatchObject({ role: 'reader', description: 'on leave' });
    expectError(await alice.request('POST', '/v1/volumes', { body: { name: 'while-reader', sizeBytes: MiB } }), 403, 'FORBIDDEN');
    const before = await storeRows();
    expectError(await s.api.request('PATCH', '/v1/users/alice', { body: { role: 'admin' } }), 400, 'VALIDATION_FAILED');
    expectError(await s.api.request('PATCH', '/v1/users/alice', { body: {} }), 400, 'VALIDATION_FAILED');
    expectError(await s.api.request('PATCH', '/v1/users/nobody', { body: { role: 'reader' } }), 404, 'USER_NOT_FOUND');
    expect(await storeRows()).toBe(before);
    await s.api.ok('PATCH', '/v1/users/alice', 200, { body: { role: 'member' } });
    expect((await alice.ok<Whoami>('GET', '/v1/whoami', 200)).role).toBe('member');

    // Deleting a user stops its tokens at once.
    const gone = await makeTenantUser(s.api, { tenant: 'tn-b', user: 'gone', role: 'member' });
    await as(gone.token).ok('GET', '/v1/whoami', 200);
    expect((await s.api.request('DELETE', '/v1/users/gone')).status).toBe(204);
    expectError(await s.api.request('GET', '/v1/whoami', { token: gone.token }), 401, 'UNAUTHORIZED');
    expectError(await s.api.request('GET', '/v1/users/gone'), 404, 'USER_NOT_FOUND');
  });

  it('lets an admin update a tenant, and deletes only an empty one', async () => {
    const before = await s.api.ok<Tenant>('GET', '/v1/tenants/tn-a', 200);
    const updated = await s.api.ok<Tenant>('PATCH', '/v1/tenants/tn-a', 200, { body: { description: 'Acme, project alpha' } });
    expect(updated).toMatchObject({ id: before.id, name: 'tn-a', description: 'Acme, project alpha', createdAt: before.createdAt });
    expect(Date.parse(updated.updatedAt)).toBeGreaterThanOrEqual(Date.parse(before.updatedAt));
    expect(await s.api.ok<Tenant>('GET', `/v1/tenants/${before.id}`, 200)).toMatchObject({ description: 'Acme, project alpha' });
    expect(updated.usage.users).toBeGreaterThanOrEqual(3);
    expect(updated.usage.volumes).toBe(1);
    const rows = await storeRows();
    expectError(await s.api.request('PATCH', '/v1/tenants/tn-a', { body: {} }), 400, 'VALIDATION_FAILED');
    expectError(await s.api.request('PATCH', '/v1/tenants/tn-a', { body: { description: 'x'.repeat(1025) } }), 400, 'VALIDATION_FAILED');
    expectError(await s.api.request('PATCH', '/v1/tenants/nowhere', { body: { description: 'x' } }), 404, 'TENANT_NOT_FOUND');
    const full = expectError(await s.api.request('DELETE', '/v1/tenants/tn-a'), 409, 'TENANT_NOT_EMPTY');
    expect(full.details.counts).toMatchObject({ volumes: 1 });
    expectError(await s.api.request('DELETE', '/v1/tenants/default'), 409, 'INVALID_STATE');
    expectError(await s.api.request('POST', '/v1/tenants', { body: { name: 'tn-a' } }), 409, 'NAME_TAKEN');
    expectError(await s.api.request('POST', '/v1/tenants', { body: { name: 'bad\u001b[2J' } }), 400, 'VALIDATION_FAILED');
    expect(await storeRows()).toBe(rows);
    await s.api.ok('POST', '/v1/tenants', 201, { body: { name: 'tn-empty' } });
    expect((await s.api.request('DELETE', '/v1/tenants/tn-empty')).status).toBe(204);
    expectError(await s.api.request('GET', '/v1/tenants/tn-empty'), 404, 'TENANT_NOT_FOUND');
  });
});
