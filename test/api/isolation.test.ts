import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import type { Snapshot } from '../../src/core/schemas/snapshot-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { InjectClient, startInjectServer, type InjectServer } from '../helpers/inject.js';
import { makeTenantUser } from '../helpers/tenants.js';

const MiB = 1024 ** 2;
interface ErrorBody { code: string; message: string }
interface Page<T> { items: T[]; nextCursor: string | null }

/**
 * Tenant isolation (issue 11.3): another tenant's volume, snapshot, grant, operation and event is
 * not found (404, never 403: existence does not leak) in every route, absent from every list, and
 * an admin sees across tenants only when asking `allTenants`.
 */
describe('tenant isolation', () => {
  let s: InjectServer;
  let alice: InjectClient; // member of acme
  let bob: InjectClient; // member of beta
  let bea: InjectClient; // reader of beta
  let vol: Volume;
  let snap: Snapshot;
  let ops: string[];

  beforeAll(async () => {
    s = await startInjectServer();
    alice = new InjectClient(s.server.app, (await makeTenantUser(s.api, { tenant: 'acme', user: 'alice', role: 'member' })).token);
    bob = new InjectClient(s.server.app, (await makeTenantUser(s.api, { tenant: 'beta', user: 'bob', role: 'member' })).token);
    bea = new InjectClient(s.server.app, (await makeTenantUser(s.api, { tenant: 'beta', user: 'bea', role: 'reader' })).token);
    await s.api.ok('POST', '/v1/hosts', 201, { body: { name: 'hv1' } });
    const created = await alice.ok<{ volume: Volume; operation: Operation }>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'data', sizeBytes: 4 * MiB } });
    vol = created.volume;
    const snapped = await alice.ok<{ snapshot: Snapshot; operation: Operation }>('POST', '/v1/snapshots?wait=true', 200, { body: { volume: 'data', name: 'nightly' } });
    snap = snapped.snapshot;
    const granted = await alice.ok<{ operation: Operation }>('POST', '/v1/volumes/data/grants?wait=true', 200, { body: { host: 'hv1' } });
    ops = [created.operation.id, snapped.operation.id, granted.operation.id];
  });
  afterAll(async () => {
    await s.close();
  });

  it('answers 404 for every route on another tenant\'s volume, snapshot, grant and operation, by id and by name, and changes nothing', async () => {
    const tries: [string, string, unknown?][] = [];
    for (const ref of [vol.id, 'data']) {
      tries.push(
        ['GET', `/v1/volumes/${ref}`], ['POST', `/v1/volumes/${ref}/resize`, { sizeBytes: 8 * MiB }], ['DELETE', `/v1/volumes/${ref}`],
        ['GET', `/v1/volumes/${ref}/grants`], ['GET', `/v1/volumes/${ref}/grants/hv1/connection`], ['DELETE', `/v1/volumes/${ref}/grants/hv1`],
        ['POST', `/v1/volumes/${ref}/grants`, { host: 'hv1' }], ['POST', `/v1/volumes/${ref}/attachments`, { host: 'hv1', instance: 'vm1' }],
        ['POST', `/v1/volumes/${ref}/detach`, {}], ['POST', `/v1/volumes/${ref}/revert`, { snapshot: snap.id }],
        ['POST', '/v1/snapshots', { volume: ref, name: 'mine' }], ['POST', '/v1/volumes', { name: `clone-${ref.length}`, fromVolume: ref }],
        ['GET', `/v1/snapshots?volume=${ref}`], ['GET', `/v1/attachments?volume=${ref}`],
      );
    }
    for (const ref of [snap.id, 'nightly']) {
      tries.push(['GET', `/v1/snapshots/${ref}`], ['DELETE', `/v1/snapshots/${ref}`], ['POST', '/v1/volumes', { name: `from-${ref.length}`, fromSnapshot: ref }]);
    }
    for (const id of ops) tries.push(['GET', `/v1/operations/${id}`], ['GET', `/v1/operations/${id}?waitMs=10`]);
    const leaks: string[] = [];
    for (const who of [bob, bea]) {
      for (const [method, path, body] of tries) {
        const r = await who.request(method, path, body === undefined ? {} : { body });
        const code = (r.body as ErrorBody | undefined)?.code ?? '';
        // A reader is refused writes and secrets by its role first (403 on its own volumes too, so it tells nothing); every other answer is a 404.
        const roleRefusal = who === bea && r.status === 403 && code === 'FORBIDDEN' && r.text.includes('which the role reader does not have');
        if (r.status !== 404 && !roleRefusal) leaks.push(`${who === bob ? 'member' : 'reader'} ${method} ${path}: ${String(r.status)} ${r.text.slice(0, 160)}`);
        // An error may repeat the reference it was given, nothing more of the resource.
        const given = `${path} ${JSON.stringify(body ?? {})}`;
        if (r.text.includes(vol.id) && !given.includes(vol.id)) leaks.push(`${method} ${path} names the other tenant's volume id`);
        if (r.text.includes(vol.backendId ?? '-') || r.text.includes('4194304')) leaks.push(`${method} ${path} tells the other tenant's volume's backend or size`);
      }
    }
    expect(leaks).toEqual([]);
    // Nothing changed for acme.
    const still = await alice.ok<Volume>('GET', '/v1/volumes/data', 200);
    expect([still.state, still.sizeBytes]).toEqual(['available', 4 * MiB]);
    expect((await alice.ok<Page<{ host: string; state: string }>>('GET', '/v1/volumes/data/grants', 200)).items.map((g) => g.state)).toEqual(['active']);
    expect((await alice.ok<Page<Snapshot>>('GET', '/v1/snapshots', 200)).items.map((x) => x.name)).toEqual(['nightly']);
  });

  it('leaves another tenant\'s resources out of every list, and a name taken there is free here', async () => {
    const mine = await bob.ok<{ volume: Volume }>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'data', sizeBytes: 2 * MiB } });
    expect(mine.volume.tenantId).not.toBe(vol.tenantId);
    for (const who of [bob, bea]) {
      for (const path of ['/v1/volumes', '/v1/snapshots', '/v1/attachments?all=true', '/v1/migrations', '/v1/operations', '/v1/events?limit=1000']) {
        const r = await who.ok<Page<Record<string, unknown>>>('GET', path, 200);
        const text = JSON.stringify(r);
        expect(text, path).not.toContain(vol.id);
        expect(text, path).not.toContain(snap.id);
        for (const id of ops) expect(text, path).not.toContain(id);
        expect(text, path).not.toContain('alice');
        for (const item of r.items) expect(item['tenantId'], path).toBe(mine.volume.tenantId);
      }
    }
    const names = (await bob.ok<Page<Volume>>('GET', '/v1/volumes', 200)).items.map((v) => v.name);
    expect(names).toEqual(['data']);
  });

  it('shows members and readers only their tenant\'s resources\' events and operations, never the system\'s', async () => {
    const types = new Set((await bea.ok<Page<{ resourceType: string }>>('GET', '/v1/events?limit=1000', 200)).items.map((e) => e.resourceType));
    expect([...types].every((t) => ['volume', 'snapshot', 'grant', 'attachment', 'migration'].includes(t)), [...types].join(',')).toBe(true);
    expect(types.has('volume')).toBe(true);
    const targets = new Set((await bea.ok<Page<Operation>>('GET', '/v1/operations?limit=1000', 200)).items.map((o) => o.targetType));
    expect([...targets].every((t) => ['volume', 'snapshot', 'grant', 'attachment', 'migration'].includes(t)), [...targets].join(',')).toBe(true);
    // The admin sees the system's events (backends, hosts) in its own tenant's log.
    const adminTypes = new Set((await s.api.ok<Page<{ resourceType: string }>>('GET', '/v1/events?limit=1000', 200)).items.map((e) => e.resourceType));
    expect(adminTypes.has('host')).toBe(true);
    expect(adminTypes.has('backend')).toBe(true);
  });

  it('lets an admin list every tenant\'s with allTenants, each item naming its tenant, and refuses it to others', async () => {
    const own = await s.api.ok<Page<Volume>>('GET', '/v1/volumes', 200);
    expect(own.items.map((v) => v.id)).not.toContain(vol.id);
    const all = await s.api.ok<Page<Volume>>('GET', '/v1/volumes?allTenants=true', 200);
    expect(all.items.filter((v) => v.name === 'data').map((v) => v.tenantId).sort()).toHaveLength(2);
    expect(all.items.map((v) => v.id)).toContain(vol.id);
    // Two volumes named "data": paging by (name, id) shows both, one per page.
    const first = await s.api.ok<Page<Volume>>('GET', '/v1/volumes?allTenants=true&limit=1', 200);
    const names: string[] = [];
    let cursor: string | null = first.nextCursor;
    names.push(...first.items.map((v) => v.id));
    while (cursor !== null) {
      const next: Page<Volume> = await s.api.ok<Page<Volume>>('GET', `/v1/volumes?allTenants=true&limit=1&cursor=${encodeURIComponent(cursor)}`, 200);
      names.push(...next.items.map((v) => v.id));
      cursor = next.nextCursor;
    }
    expect(names.sort()).toEqual(all.items.map((v) => v.id).sort());
    const snaps = await s.api.ok<Page<Snapshot>>('GET', `/v1/snapshots?allTenants=true&volume=${vol.id}`, 200);
    expect(snaps.items.map((x) => x.id)).toEqual([snap.id]);
    const byName = await s.api.request('GET', '/v1/snapshots?allTenants=true&volume=data');
    expect([byName.status, (byName.body as ErrorBody).code]).toEqual([404, 'VOLUME_NOT_FOUND']);
    expect((byName.body as ErrorBody).message).toContain('by its id');
    const events = await s.api.ok<Page<{ actor: string; resourceId: string }>>('GET', '/v1/events?allTenants=true&limit=1000', 200);
    expect(events.items.find((e) => e.resourceId === vol.id)?.actor).toBe('alice/first');
    const allOps = await s.api.ok<Page<Operation>>('GET', '/v1/operations?allTenants=true&limit=1000', 200);
    expect(allOps.items.map((o) => o.id)).toEqual(expect.arrayContaining(ops));
    for (const path of ['/v1/volumes', '/v1/snapshots', '/v1/attachments', '/v1/migrations', '/v1/operations', '/v1/events']) {
      for (const who of [bob, bea]) {
        const r = await who.request('GET', `${path}?allTenants=true`);
        expect([path, r.status, (r.body as ErrorBody).code]).toEqual([path, 403, 'FORBIDDEN']);
      }
    }
  });
});

/**
 * Backends, storage classes and hosts shared with every tenant or restricted to some (issue 11.4):
 * placement honours it, and a tenant that may not use one does not see it at all — not in its
 * dry-runs, its placement explanations, its errors or its class list.
 */
describe('backends, classes and hosts restricted to tenants', () => {
  let s: InjectServer;
  let alice: InjectClient; // member of acme
  let bob: InjectClient; // member of beta

  beforeAll(async () => {
    s = await startInjectServer({ defaultBackend: false });
    alice = new InjectClient(s.server.app, (await makeTenantUser(s.api, { tenant: 'acme', user: 'alice', role: 'member' })).token);
    bob = new InjectClient(s.server.app, (await makeTenantUser(s.api, { tenant: 'beta', user: 'bob', role: 'member' })).token);
    const mk = async (name: string, body: Record<string, unknown>): Promise<void> => {
      const dir = join(s.scratchDir, 'backends', name);
      mkdirSync(dir, { recursive: true });
      await s.api.ok('POST', '/v1/backends', 201, { body: { name, driver: `dir://${dir}`, ...body } });
    };
    await mk('shared', { cost: 5 });
    await mk('acme-only', { cost: 0, tenants: ['acme'] });
    await s.api.ok('POST', '/v1/classes', 201, { body: { name: 'gold', tenants: ['acme'] } });
    await s.api.ok('POST', '/v1/hosts', 201, { body: { name: 'hv-acme', tenants: ['acme'] } });
    await s.api.ok('POST', '/v1/hosts', 201, { body: { name: 'hv-all' } });
  });
  afterAll(async () => {
    await s.close();
  });

  it('places each tenant only on backends it may use, and a dry-run or a failed placement never names the others', async () => {
    const a = await alice.ok<{ volume: Volume }>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'a1', sizeBytes: MiB } });
    expect(a.volume.backendName).toBe('acme-only'); // the cheapest it may use
    const b = await bob.ok<{ volume: Volume }>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'b1', sizeBytes: MiB } });
    expect(b.volume.backendName).toBe('shared');
    expect(JSON.stringify(b.volume)).not.toContain('acme-only');
    const dryBob = await bob.ok<{ verdicts: { backend: string }[] }>('POST', '/v1/placements/dry-run', 200, { body: { name: 'x', sizeBytes: MiB } });
    expect(dryBob.verdicts.map((v) => v.backend)).toEqual(['shared']);
    const dryAlice = await alice.ok<{ verdicts: { backend: string }[] }>('POST', '/v1/placements/dry-run', 200, { body: { name: 'x', sizeBytes: MiB } });
    expect(dryAlice.verdicts.map((v) => v.backend).sort()).toEqual(['acme-only', 'shared']);
    const acmeId = (await s.api.ok<{ id: string }>('GET', '/v1/backends/acme-only', 200)).id;
    for (const backend of ['acme-only', acmeId]) {
      const pinned = await bob.request('POST', '/v1/volumes', { body: { name: 'b2', sizeBytes: MiB, backend } });
      expect([pinned.status, (pinned.body as ErrorBody).code]).toEqual([404, 'BACKEND_NOT_FOUND']);
      const dry = await bob.request('POST', '/v1/placements/dry-run', { body: { name: 'b2', sizeBytes: MiB, backend } });
      expect(dry.status).toBe(404);
    }
    // With the only backend it may use full, beta's refusal explains itself without naming acme's.
    const huge = await bob.request('POST', '/v1/volumes', { body: { name: 'b3', sizeBytes: 2 ** 50 } });
    expect([huge.status, (huge.body as ErrorBody).code]).toEqual([422, 'NO_VALID_BACKEND']);
    expect(huge.text).toContain('shared');
    expect(huge.text).not.toContain('acme-only');
    expect((await bob.ok<Page<Volume>>('GET', '/v1/volumes', 200)).items.map((v) => v.name)).toEqual(['b1']);
  });

  it('hides a restricted class from other tenants, refuses to restrict the default class, and counts only the viewer\'s volumes', async () => {
    expect((await bob.ok<Page<{ name: string }>>('GET', '/v1/classes', 200)).items.map((c) => c.name)).toEqual([]);
    const get = await bob.request('GET', '/v1/classes/gold');
    expect([get.status, (get.body as ErrorBody).code]).toEqual([404, 'CLASS_NOT_FOUND']);
    const use = await bob.request('POST', '/v1/volumes', { body: { name: 'g1', sizeBytes: MiB, class: 'gold' } });
    expect([use.status, (use.body as ErrorBody).code]).toEqual([404, 'CLASS_NOT_FOUND']);
    await alice.ok('POST', '/v1/volumes?wait=true', 200, { body: { name: 'g1', sizeBytes: MiB, class: 'gold' } });
    const seen = await alice.ok<{ name: string; volumeCount: number; tenants?: unknown }>('GET', '/v1/classes/gold', 200);
    expect(seen.volumeCount).toBe(1);
    expect(seen.tenants).toBeUndefined(); // whom it is shared with is the admins' business
    const admin = await s.api.ok<{ tenants: string[] | null }>('GET', '/v1/classes/gold', 200);
    expect(admin.tenants).toEqual(['acme']);
    const makeDefault = await s.api.request('PATCH', '/v1/classes/gold', { body: { default: true } });
    expect([makeDefault.status, (makeDefault.body as ErrorBody).code]).toEqual([400, 'VALIDATION_FAILED']);
    const restrictedDefault = await s.api.request('POST', '/v1/classes', { body: { name: 'std', default: true, tenants: ['beta'] } });
    expect(restrictedDefault.status).toBe(400);
    expect((await s.api.request('GET', '/v1/classes/std')).status).toBe(404);
  });

  it('refuses an unknown tenant in a restriction with nothing changed, and sharing a backend again lets every tenant use it', async () => {
    const bad = await s.api.request('PATCH', '/v1/backends/acme-only', { body: { tenants: ['acme', 'nope'] } });
    expect([bad.status, (bad.body as ErrorBody).code]).toEqual([404, 'TENANT_NOT_FOUND']);
    expect((await s.api.ok<{ tenants: string[] | null }>('GET', '/v1/backends/acme-only', 200)).tenants).toEqual(['acme']);
    for (const tenants of [[''], ['a'.repeat(200)], 'acme', [1]]) {
      expect((await s.api.request('PATCH', '/v1/backends/acme-only', { body: { tenants } })).status, JSON.stringify(tenants)).toBe(400);
    }
    await s.api.ok('PATCH', '/v1/backends/acme-only', 200, { body: { tenants: null } });
    const b = await bob.ok<{ volume: Volume }>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'b4', sizeBytes: MiB } });
    expect(b.volume.backendName).toBe('acme-only');
    await s.api.ok('PATCH', '/v1/backends/acme-only', 200, { body: { tenants: ['acme'] } });
  });

  it('lets only the tenants a host is restricted to grant or attach to it', async () => {
    const grant = await bob.request('POST', '/v1/volumes/b1/grants', { body: { host: 'hv-acme' } });
    expect([grant.status, (grant.body as ErrorBody).code]).toEqual([404, 'HOST_NOT_FOUND']);
    const attach = await bob.request('POST', '/v1/volumes/b1/attachments', { body: { host: 'hv-acme', instance: 'vm1' } });
    expect([attach.status, (attach.body as ErrorBody).code]).toEqual([404, 'HOST_NOT_FOUND']);
    const list = await bob.request('GET', '/v1/attachments?host=hv-acme');
    expect(list.status).toBe(404);
    await bob.ok('POST', '/v1/volumes/b1/grants?wait=true', 200, { body: { host: 'hv-all' } });
    await alice.ok('POST', '/v1/volumes/a1/grants?wait=true', 200, { body: { host: 'hv-acme' } });
    expect((await s.api.ok<{ tenants: string[] | null }>('GET', '/v1/hosts/hv-acme', 200)).tenants).toEqual(['acme']);
  });
});
