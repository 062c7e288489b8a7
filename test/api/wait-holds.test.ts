import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiResponse } from '../helpers/server.js';
import { InjectClient, startInjectServer, type InjectServer } from '../helpers/inject.js';
import { makeTenantUser } from '../helpers/tenants.js';

const MiB = 1024 ** 2;
interface Answer { operation: { id: string; state: string } }

describe('?wait=true holds are capped per tenant', () => {
  let s: InjectServer;
  beforeAll(async () => {
    // A per-tenant cap of 2 (the default is 64) so a test can hold more than the cap without 65 attaches.
    s = await startInjectServer({ waitHoldsPerTenant: 2 });
  });
  afterAll(async () => {
    await s.close();
  });

  it('holds up to the cap and answers the rest 202 at once, their operations submitted', async () => {
    await s.api.ok('POST', '/v1/hosts', 201, { body: { name: 'wh-host' } });
    for (let i = 0; i < 5; i++) await s.api.ok('POST', '/v1/volumes?wait=true', 200, { body: { name: `wh-${String(i)}`, sizeBytes: MiB } });
    // An attach waits for the host's agent, which never reports: a held request lasts until its timeout.
    const settled: { i: number; r: ApiResponse }[] = [];
    const all = Array.from({ length: 5 }, (_, i) => s.api.request('POST', `/v1/volumes/wh-${String(i)}/attachments?wait=true&timeoutMs=20000`, { body: { host: 'wh-host', instance: `vm${String(i)}` } })
      .then((r) => { settled.push({ i, r }); return r; }));
    const first = await Promise.race([Promise.all(all), new Promise<void>((resolve) => { const t = setInterval(() => { if (settled.length >= 3) { clearInterval(t); resolve(); } }, 20); })]);
    expect(first).toBeUndefined();
    // The three beyond the cap answered while the two held ones still wait for the agent.
    expect(settled.length).toBe(3);
    for (const { r } of settled) {
      expect(r.status, r.text).toBe(202);
      expect((r.body as Answer).operation.state).not.toBe('succeeded');
    }
    const rest = await Promise.all(all);
    expect(rest.filter((r) => r.status === 202).length).toBe(5);
  });
});

describe('?wait=true holds are capped in total, across tenants', () => {
  let s: InjectServer;
  beforeAll(async () => {
    // A total cap of 2 (the default is 1024) under the default per-tenant cap of 64, so the total is the one that binds.
    s = await startInjectServer({ waitHoldsTotal: 2 });
  });
  afterAll(async () => {
    await s.close();
  });

  it('answers another tenant 202 at once while the total is held, and holds it again once the holds end', async () => {
    const other = new InjectClient(s.server.app, (await makeTenantUser(s.api, { tenant: 'wt-other', user: 'wt-member', role: 'member' })).token);
    // Held and finished: below the cap a create with wait answers 200.
    await other.ok('POST', '/v1/volumes?wait=true', 200, { body: { name: 'wt-before', sizeBytes: MiB } });
    await s.api.ok('POST', '/v1/hosts', 201, { body: { name: 'wt-host' } });
    for (let i = 0; i < 3; i++) await s.api.ok('POST', '/v1/volumes?wait=true', 200, { body: { name: `wt-${String(i)}`, sizeBytes: MiB } });
    // Three attaches of the default tenant, each waiting for an agent that never reports: two are held, the third answers at once.
    const settled: ApiResponse[] = [];
    const held = Array.from({ length: 3 }, (_, i) => s.api.request('POST', `/v1/volumes/wt-${String(i)}/attachments?wait=true&timeoutMs=20000`, { body: { host: 'wt-host', instance: `vm${String(i)}` } })
      .then((r) => { settled.push(r); return r; }));
    await new Promise<void>((resolve) => { const t = setInterval(() => { if (settled.length >= 1) { clearInterval(t); resolve(); } }, 20); });
    expect(settled.map((r) => r.status)).toEqual([202]);
    // The other tenant holds nothing, yet the total is full: its create is answered without waiting.
    const r = await other.request('POST', '/v1/volumes?wait=true', { body: { name: 'wt-during', sizeBytes: MiB } });
    expect(r.status, r.text).toBe(202);
    expect(settled.length, 'the two held attaches still wait').toBe(1);
    expect((await Promise.all(held)).map((x) => x.status)).toEqual([202, 202, 202]);
    // Released: held again.
    await other.ok('POST', '/v1/volumes?wait=true', 200, { body: { name: 'wt-after', sizeBytes: MiB } });
  });
});
