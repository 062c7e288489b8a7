import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import type { Tenant } from '../../src/core/schemas/tenant-schema.js';
import { pollUntil } from '../helpers/server.js';
import { InjectClient, startInjectServer, type InjectServer } from '../helpers/inject.js';
import { makeTenantUser } from '../helpers/tenants.js';
import { expectError } from './api-kit.js';

const MiB = 1024 ** 2;

/** Tables whose rows carry a tenant_id: after a cascade none may hold a row of the deleted tenant. */
const TENANT_TABLES = ['users', 'api_tokens', 'volumes', 'snapshots', 'grants', 'attachments', 'migrations', 'operations', 'events', 'quotas', 'idempotency_keys'] as const;

describe('deleting a tenant with --cascade (API, dir backend)', () => {
  let s: InjectServer;
  beforeAll(async () => {
    s = await startInjectServer();
    await s.api.ok('POST', '/v1/hosts', 201, { body: { name: 'hv-cascade', addresses: ['10.99.201.2'] } });
  });
  afterAll(async () => {
    await s.close();
  });

  /** Rows still carrying `tenantId`, table by table (only the non-empty ones). */
  async function rowsOf(tenantId: string): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const table of TENANT_TABLES) {
      const r = await s.server.store.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
      if (Number(r.n) > 0) out[table] = Number(r.n);
    }
    const tenant = await s.server.store.db.selectFrom('tenants').select('id').where('id', '=', tenantId).executeTakeFirst();
    if (tenant) out.tenants = 1;
    return out;
  }

  it('refuses without cascade (409 with the counts, nothing changed), then deletes everything, on the backend too, as one operation', async () => {
    const member = await makeTenantUser(s.api, { tenant: 'doomed', user: 'doomed-alice', role: 'member' });
    const alice = new InjectClient(s.server.app, member.token);
    const vol = await alice.ok<{ volume: { id: string } }>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'dv1', sizeBytes: 4 * MiB } });
    const snap = await alice.ok<{ snapshot: { id: string } }>('POST', '/v1/snapshots?wait=true', 200, { body: { volume: 'dv1', name: 'ds1' } });
    await alice.ok('POST', '/v1/volumes/dv1/grants?wait=true', 200, { body: { host: 'hv-cascade', mode: 'rw' } });
    await s.api.ok('PUT', '/v1/tenants/doomed/quota', 200, { body: { maxVolumes: 10 } });
    const volumesDir = join(s.dataDir, 'volumes');
    const files = [`${vol.volume.id}.raw`, `${snap.snapshot.id}.raw`];
    for (const f of files) expect(existsSync(join(volumesDir, f)), f).toBe(true);
    const before = await s.api.ok<Tenant>('GET', '/v1/tenants/doomed', 200);

    const refused = expectError(await s.api.request('DELETE', '/v1/tenants/doomed'), 409, 'TENANT_NOT_EMPTY');
    expect(refused.details).toEqual({ tenant: 'doomed', counts: { users: 1, volumes: 1, snapshots: 1, grants: 1, attachments: 0 } });
    expect(await s.api.ok<Tenant>('GET', '/v1/tenants/doomed', 200)).toEqual(before);
    expect(before.deletingAt).toBeNull();
    expect((await alice.request('GET', '/v1/volumes/dv1')).status).toBe(200);

    const r = await s.api.request('DELETE', '/v1/tenants/doomed?cascade=true');
    expect(r.status, r.text).toBe(202);
    const submitted = (r.body as { operation: Operation }).operation;
    expect(submitted).toMatchObject({ kind: 'tenant.delete', targetType: 'tenant', targetId: before.id });
    // Its tokens stop at once, before the operation has done anything.
    expectError(await alice.request('GET', '/v1/volumes'), 401, 'UNAUTHORIZED');

    const op = await pollUntil('the tenant delete to finish', async () => {
      const o = await s.api.ok<Operation>('GET', `/v1/operations/${submitted.id}`, 200);
      return o.state === 'succeeded' || o.state === 'failed' ? o : undefined;
    });
    expect(op.state, JSON.stringify(op.error)).toBe('succeeded');
    expect(op.stepsDone.map((x) => x.name)).toEqual(['seal', 'access', 'snapshots', 'volumes', 'finalize']);
    expect(op.result).toEqual({ tenantId: before.id, tenant: 'doomed' });

    expectError(await s.api.request('GET', '/v1/tenants/doomed'), 404, 'TENANT_NOT_FOUND');
    expectError(await s.api.request('GET', '/v1/users/doomed-alice'), 404, 'USER_NOT_FOUND');
    expect(readdirSync(volumesDir).filter((f) => files.includes(f)), 'left on the backend').toEqual([]);
    expect(await rowsOf(before.id)).toEqual({});
    // The tenant's own events went with it; one audit line, filed under the default tenant, stays.
    const events = await s.api.ok<{ items: { resourceType: string; resourceName: string | null; action: string }[] }>('GET', `/v1/events?resource=${before.id}`, 200);
    expect(events.items.map((e) => [e.resourceType, e.resourceName, e.action])).toEqual([['tenant', 'doomed', 'deleted']]);
    expectError(await alice.request('GET', '/v1/volumes'), 401, 'UNAUTHORIZED');
    // The name is free again.
    await s.api.ok('POST', '/v1/tenants', 201, { body: { name: 'doomed' } });
  });

  it('waits with ?wait=true; the default tenant and an unknown one are refused, changing nothing', async () => {
    await makeTenantUser(s.api, { tenant: 'brief', user: 'brief-bob', role: 'reader' });
    await makeTenantUser(s.api, { tenant: 'stays', user: 'stays-sam', role: 'reader' });
    await s.api.ok('POST', '/v1/hosts', 201, { body: { name: 'hv-brief', tenants: ['brief'] } });
    await s.api.ok('POST', '/v1/classes', 201, { body: { name: 'brief-gold', tenants: ['brief', 'stays'] } });
    const r = await s.api.ok<{ operation: Operation }>('DELETE', '/v1/tenants/brief?cascade=true&wait=true', 200);
    expect(r.operation).toMatchObject({ kind: 'tenant.delete', state: 'succeeded' });
    expectError(await s.api.request('GET', '/v1/tenants/brief'), 404, 'TENANT_NOT_FOUND');
    // Out of every restriction: emptied stays restricted (to nobody), it never turns shared.
    expect((await s.api.ok<{ tenants: string[] | null }>('GET', '/v1/hosts/hv-brief', 200)).tenants).toEqual([]);
    expect((await s.api.ok<{ tenants: string[] | null }>('GET', '/v1/classes/brief-gold', 200)).tenants).toEqual(['stays']);

    const ops = (await s.api.ok<{ items: Operation[] }>('GET', '/v1/operations?limit=100', 200)).items.length;
    expectError(await s.api.request('DELETE', '/v1/tenants/default?cascade=true'), 409, 'INVALID_STATE');
    expectError(await s.api.request('DELETE', '/v1/tenants/nope?cascade=true'), 404, 'TENANT_NOT_FOUND');
    expectError(await s.api.request('DELETE', '/v1/tenants/brief?cascade=maybe'), 400, 'VALIDATION_FAILED');
    expect((await s.api.ok<{ items: Operation[] }>('GET', '/v1/operations?limit=100', 200)).items.length).toBe(ops);
    expect((await s.api.request('GET', '/v1/volumes')).status).toBe(200);
  });

  it('a member cannot delete a tenant, its own neither', async () => {
    const m = await makeTenantUser(s.api, { tenant: 'kept', user: 'kept-carol', role: 'member' });
    const carol = new InjectClient(s.server.app, m.token);
    expectError(await carol.request('DELETE', '/v1/tenants/kept?cascade=true'), 403, 'FORBIDDEN');
    expect((await s.api.ok<Tenant>('GET', '/v1/tenants/kept', 200)).deletingAt).toBeNull();
  });
});
