import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QuotaLine, QuotaReport } from '../../src/core/schemas/quota-schema.js';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { InjectClient, startInjectServer, type InjectServer } from '../helpers/inject.js';
import { makeTenantUser } from '../helpers/tenants.js';

const MiB = 1024 ** 2;
interface ErrorBody { code: string; message: string; details: Record<string, unknown> }
interface Submitted { volume: Volume; operation: Operation }

function line(r: QuotaReport, quota: string, scope = 'tenant'): QuotaLine | undefined {
  return r.lines.find((l) => l.quota === quota && l.scope === scope);
}

describe('quotas over HTTP', () => {
  let s: InjectServer;
  beforeAll(async () => {
    s = await startInjectServer();
  });
  afterAll(async () => {
    await s.close();
  });

  it('shows unlimited quotas with usage, sets and clears limits, and refuses bad input changing nothing', async () => {
    const before = await s.api.ok<QuotaReport>('GET', '/v1/quotas', 200);
    expect(line(before, 'volumes')).toMatchObject({ limit: null, free: null, used: 0 });
    const set = await s.api.ok<QuotaReport>('PUT', '/v1/tenants/default/quota', 200, { body: { maxVolumes: 5, maxBytes: 100 * MiB } });
    expect(line(set, 'volumes')).toMatchObject({ limit: 5, used: 0, free: 5 });
    expect(line(set, 'bytes')).toMatchObject({ limit: 100 * MiB });
    expect(line(set, 'snapshots')).toMatchObject({ limit: null });
    for (const body of [{ maxVolumes: -1 }, { maxBytes: 2 ** 53 }, { maxVolumes: 1.5 }, { maxVolumes: '3' }, { other: 1 }]) {
      const r = await s.api.request('PUT', '/v1/tenants/default/quota', { body });
      expect(r.status, JSON.stringify(body)).toBe(400);
    }
    const noClass = await s.api.request('PUT', '/v1/tenants/default/quota', { body: { class: 'nope', maxVolumes: 1 } });
    expect([noClass.status, (noClass.body as ErrorBody).code]).toEqual([404, 'CLASS_NOT_FOUND']);
    const noTenant = await s.api.request('PUT', '/v1/tenants/nope/quota', { body: { maxVolumes: 1 } });
    expect([noTenant.status, (noTenant.body as ErrorBody).code]).toEqual([404, 'TENANT_NOT_FOUND']);
    expect((await s.api.request('GET', '/v1/tenants/nope/quota')).status).toBe(404);
    const member = await makeTenantUser(s.api, { tenant: 'qt-other', user: 'qt-member', role: 'member' });
    const asMember = new InjectClient(s.server.app, member.token);
    expect((await asMember.request('PUT', '/v1/tenants/qt-other/quota', { body: { maxVolumes: 100 } })).status).toBe(403);
    expect((await asMember.request('GET', '/v1/tenants/default/quota')).status).toBe(403);
    // The member sees its own tenant's quotas, not the default tenant's.
    expect(line(await asMember.ok<QuotaReport>('GET', '/v1/quotas', 200), 'volumes')).toMatchObject({ limit: null });
    const after = await s.api.ok<QuotaReport>('GET', '/v1/tenants/default/quota', 200);
    expect(line(after, 'volumes')).toMatchObject({ limit: 5 });
    const cleared = await s.api.ok<QuotaReport>('PUT', '/v1/tenants/default/quota', 200, { body: { maxVolumes: null, maxBytes: null } });
    expect(line(cleared, 'volumes')).toMatchObject({ limit: null });
  });

  it('refuses a create or a grow past the bytes quota with nothing changed; a delete frees quota', async () => {
    await s.api.ok('PUT', '/v1/tenants/default/quota', 200, { body: { maxBytes: 10 * MiB, maxVolumes: 2 } });
    const a = await s.api.ok<Submitted>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'qa', sizeBytes: 6 * MiB } });
    const tooBig = await s.api.request('POST', '/v1/volumes', { body: { name: 'qb', sizeBytes: 5 * MiB } });
    expect(tooBig.status).toBe(422);
    expect((tooBig.body as ErrorBody).code).toBe('QUOTA_EXCEEDED');
    expect((tooBig.body as ErrorBody).details).toEqual({ quota: 'bytes', scope: 'tenant', limit: 10 * MiB, used: 6 * MiB, requested: 5 * MiB });
    expect((tooBig.body as ErrorBody).message).toContain('stowage quota set');
    const grow = await s.api.request('POST', `/v1/volumes/qa/resize`, { body: { sizeBytes: 11 * MiB } });
    expect([grow.status, (grow.body as ErrorBody).code], grow.text).toEqual([422, 'QUOTA_EXCEEDED']);
    const v = await s.api.ok<Volume>('GET', '/v1/volumes/qa', 200);
    expect([v.state, v.sizeBytes]).toEqual(['available', 6 * MiB]);
    expect(line(await s.api.ok<QuotaReport>('GET', '/v1/quotas', 200), 'bytes')).toMatchObject({ used: 6 * MiB, free: 4 * MiB });
    await s.api.ok('POST', `/v1/volumes/qa/resize?wait=true`, 200, { body: { sizeBytes: 10 * MiB } });
    await s.api.ok('DELETE', `/v1/volumes/${a.volume.id}?wait=true`, 200);
    expect(line(await s.api.ok<QuotaReport>('GET', '/v1/quotas', 200), 'bytes')).toMatchObject({ used: 0 });
    await s.api.ok('POST', '/v1/volumes?wait=true', 200, { body: { name: 'qb', sizeBytes: 5 * MiB } });
    await s.api.ok('PUT', '/v1/tenants/default/quota', 200, { body: { maxBytes: null, maxVolumes: null } });
  });
});
