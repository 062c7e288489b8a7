import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInjectServer, type InjectServer } from '../helpers/inject.js';
import { expectError } from './api-kit.js';

/** Host agents' own credentials: enrolled once per host, good only for that host's agent routes. */
describe('agent credentials', () => {
  let s: InjectServer;
  const report = { addresses: ['10.9.0.2'], connectors: ['file'], instances: ['vm1'], connected: [] };

  async function enrollToken(host: string): Promise<string> {
    return (await s.api.ok<{ token: string }>('POST', `/v1/hosts/${host}/enroll-token`, 200, { body: {} })).token;
  }
  async function exchange(host: string, token: string): Promise<string> {
    return (await s.api.ok<{ credential: string }>('POST', `/v1/hosts/${host}/agent-credential`, 200, { body: { token }, token: null })).credential;
  }
  const tokenRows = async (): Promise<unknown[]> => s.server.store.db.selectFrom('api_tokens').select(['name', 'role', 'host_id', 'token_hash']).orderBy('name').execute();

  beforeAll(async () => {
    s = await startInjectServer();
    for (const name of ['hv1', 'hv2']) await s.api.ok('POST', '/v1/hosts', 201, { body: { name } });
  });
  afterAll(async () => { await s.close(); });

  it('reports for its own host, and nothing else', async () => {
    const cred = await exchange('hv1', await enrollToken('hv1'));
    const ok = await s.api.ok<{ hostState: string }>('POST', '/v1/agents/hv1/report', 200, { body: report, token: cred });
    expect(ok.hostState).toBe('up');
    expectError(await s.api.request('POST', '/v1/agents/hv2/report', { body: report, token: cred }), 403, 'FORBIDDEN');
    // Another host's grant connection (CHAP) is refused before the route runs; its own is the route's business.
    expectError(await s.api.request('GET', '/v1/volumes/v1/grants/hv2/connection', { token: cred }), 403, 'FORBIDDEN');
    expect((await s.api.request('GET', '/v1/volumes/v1/grants/hv1/connection', { token: cred })).status).toBe(404);
    for (const [method, path, body] of [
      ['GET', '/v1/volumes', undefined], ['GET', '/v1/hosts', undefined], ['GET', '/v1/hosts/hv1', undefined],
      ['POST', '/v1/backends', { name: 'x', driver: 'dir:///tmp/x' }], ['POST', '/v1/hosts/hv1/enroll-token', {}],
      ['POST', '/v1/volumes/v1/grants', { host: 'hv1' }], ['DELETE', '/v1/hosts/hv2', undefined], ['POST', '/v1/hosts/hv2/fence', undefined],
    ] as const) {
      expectError(await s.api.request(method, path, { token: cred, ...(body ? { body } : {}) }), 403, 'FORBIDDEN');
    }
    expect((await s.api.ok<{ items: { name: string }[] }>('GET', '/v1/hosts', 200)).items.map((h) => h.name)).toEqual(['hv1', 'hv2']);
  });

  it('refuses reused, expired and wrong-host tokens alike, changing nothing', async () => {
    const t = await enrollToken('hv2');
    expectError(await s.api.request('POST', '/v1/hosts/hv1/agent-credential', { body: { token: t }, token: null }), 401, 'ENROLLMENT_INVALID');
    // One character changed — to one it is not already (a fixed 'x' left the token intact one time in 62).
    const forged = `${t.slice(0, 20)}${t[20] === 'x' ? 'y' : 'x'}${t.slice(21)}`;
    expect(forged).not.toBe(t);
    expectError(await s.api.request('POST', '/v1/hosts/hv2/agent-credential', { body: { token: forged }, token: null }), 401, 'ENROLLMENT_INVALID');
    expectError(await s.api.request('POST', '/v1/hosts/hv2/agent-credential', { body: { token: 'garbage' }, token: null }), 401, 'ENROLLMENT_INVALID');
    const before = await tokenRows();
    await exchange('hv2', t);
    const after = await tokenRows();
    expect(after.length).toBe(before.length + 1);
    const reused = await s.api.request('POST', '/v1/hosts/hv2/agent-credential', { body: { token: t }, token: null });
    expectError(reused, 401, 'ENROLLMENT_INVALID');
    const expired = await enrollToken('hv2');
    await s.server.store.db.updateTable('hosts').set({ enroll_expires_at: new Date(Date.now() - 1000).toISOString() }).where('name', '=', 'hv2').execute();
    const r = await s.api.request('POST', '/v1/hosts/hv2/agent-credential', { body: { token: expired }, token: null });
    const e = expectError(r, 401, 'ENROLLMENT_INVALID');
    expect(e.message).toBe(expectError(reused, 401, 'ENROLLMENT_INVALID').message);
    expect(await tokenRows()).toEqual(after);
    expect(r.text).not.toContain(expired);
  });

  it('re-enrolling replaces the old credential at once', async () => {
    const old = await exchange('hv1', await enrollToken('hv1'));
    await s.api.ok('POST', '/v1/agents/hv1/report', 200, { body: report, token: old });
    const fresh = await exchange('hv1', await enrollToken('hv1'));
    expectError(await s.api.request('POST', '/v1/agents/hv1/report', { body: report, token: old }), 401, 'UNAUTHORIZED');
    await s.api.ok('POST', '/v1/agents/hv1/report', 200, { body: report, token: fresh });
    const rows = await s.server.store.db.selectFrom('api_tokens').selectAll().where('role', '=', 'agent').execute();
    expect(rows.filter((x) => x.name === 'agent:hv1')).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toContain(fresh);
  });
});
