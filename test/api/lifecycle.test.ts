import { mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/core/schemas/backend-schema.js';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import type { StowageEvent } from '../../src/core/schemas/event-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { freshPostgresUrl } from '../helpers/pg.js';
import { pollUntil } from '../helpers/server.js';
import { startInjectServer, type InjectServer } from '../helpers/inject.js';
import { expectError, snapshotWorld } from './api-kit.js';

const MiB = 1024 ** 2;

interface Submitted { volume: Volume; operation: Operation }
interface Page<T> { items: T[]; nextCursor: string | null }

describe('volume and backend lifecycle over HTTP', () => {
  let s: InjectServer;
  let localDir: string;

  beforeAll(async () => {
    s = await startInjectServer();
    localDir = join(s.dataDir, 'volumes');
  });
  afterAll(async () => {
    await s.close();
  });

  async function eventsOf(id: string): Promise<StowageEvent[]> {
    return (await s.api.ok<Page<StowageEvent>>('GET', `/v1/events?resource=${id}&after=0&limit=1000`, 200)).items;
  }

  it('?wait=true returns the finished volume, with its file at the right size', async () => {
    const r = await s.api.ok<Submitted>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'waited', sizeBytes: 3 * MiB } });
    expect(r.operation).toMatchObject({ kind: 'volume.create', state: 'succeeded', targetId: r.volume.id, actor: 'admin/bootstrap' });
    expect(r.volume).toMatchObject({ name: 'waited', state: 'available', sizeBytes: 3 * MiB, backendName: 'local', format: 'raw' });
    expect(r.volume.placement?.winner).toBe('local');
    expect(statSync(join(localDir, `${r.volume.id}.raw`)).size).toBe(3 * MiB);
  });

  it('without wait answers 202 with the queued operation, which then finishes', async () => {
    const r = await s.api.ok<Submitted>('POST', '/v1/volumes', 202, { body: { name: 'async', sizeBytes: MiB } });
    expect(['queued', 'running', 'succeeded']).toContain(r.operation.state);
    expect(r.volume.state).toBe('creating');
    const done = await s.api.ok<Operation>('GET', `/v1/operations/${r.operation.id}?waitMs=60000`, 200);
    expect(done.state).toBe('succeeded');
    expect((await s.api.ok<Volume>('GET', '/v1/volumes/async', 200)).state).toBe('available');
  });

  it('an Idempotency-Key repeated returns the same operation and creates one volume', async () => {
    const headers = { 'idempotency-key': `create-once-${String(process.pid)}` };
    const first = await s.api.ok<Submitted>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'once', sizeBytes: MiB }, headers });
    const before = await snapshotWorld(s.api, [localDir]);
    const again = await s.api.ok<Submitted>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'once', sizeBytes: MiB }, headers });
    expect(again.operation.id).toBe(first.operation.id);
    expect(again.volume.id).toBe(first.volume.id);
    expect(await snapshotWorld(s.api, [localDir])).toEqual(before);
    // The same key for another kind of request is a conflict, not a silent replay.
    const conflict = await s.api.request('DELETE', '/v1/volumes/once', { headers });
    expectError(conflict, 409, 'IDEMPOTENCY_CONFLICT');
    expect(await snapshotWorld(s.api, [localDir])).toEqual(before);
  });

  it('events record the actor and before → after for create, resize and delete', async () => {
    const created = await s.api.ok<Submitted>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'evented', sizeBytes: MiB } });
    const id = created.volume.id;
    const resized = await s.api.ok<Submitted>('POST', `/v1/volumes/${id}/resize?wait=true`, 200, { body: { sizeBytes: 2 * MiB } });
    expect(resized.volume).toMatchObject({ state: 'available', sizeBytes: 2 * MiB });
    expect(statSync(join(localDir, `${id}.raw`)).size).toBe(2 * MiB);
    const deleted = await s.api.ok<Submitted>('DELETE', `/v1/volumes/${id}?wait=true`, 200);
    expect(deleted.volume.state).toBe('deleted');
    expect(() => statSync(join(localDir, `${id}.raw`))).toThrow();

    const evs = await eventsOf(id);
    expect(evs.map((e) => [e.action, e.fromState, e.toState])).toEqual([
      ['create', null, 'creating'],
      ['created', 'creating', 'available'],
      ['resize', 'available', 'resizing'],
      ['resized', 'resizing', 'available'],
      ['delete', 'available', 'deleting'],
      ['deleted', 'deleting', 'deleted'],
    ]);
    for (const e of evs) {
      expect(e).toMatchObject({ actor: 'admin/bootstrap', resourceType: 'volume', resourceId: id, resourceName: 'evented' });
      expect(e.operationId).toMatch(/^op-/);
      expect(e.message.length).toBeGreaterThan(5);
    }
    expect(evs.find((e) => e.action === 'resize')?.message).toMatch(/1\.0 MiB|1 MiB/);

    // The name is free again, and the old volume is still readable by id for history.
    await s.api.ok<Submitted>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'evented', sizeBytes: MiB } });
    expect((await s.api.ok<Volume>('GET', `/v1/volumes/${id}`, 200)).state).toBe('deleted');
    expectError(await s.api.request('POST', `/v1/volumes/${id}/resize`, { body: { sizeBytes: 8 * MiB } }), 409, 'INVALID_STATE');
  });

  it('a backend whose directory vanishes goes offline with the reason, and comes back after a good probe', async () => {
    const dir = join(s.scratchDir, 'flappy');
    mkdirSync(dir);
    const created = await s.api.ok<{ backend: Backend; operation: Operation }>('POST', '/v1/backends', 201, { body: { name: 'flappy', driver: `dir://${dir}` } });
    expect(created.backend).toMatchObject({ name: 'flappy', state: 'enabled', stateReason: null, kind: 'block' });
    expect(created.backend.capacity.totalBytes).toBeGreaterThan(0);
    expect(created.operation).toMatchObject({ kind: 'backend.create', state: 'succeeded' });

    rmSync(dir, { recursive: true });
    const down = await s.api.ok<Backend>('POST', '/v1/backends/flappy/refresh', 200);
    expect(down.state).toBe('offline');
    expect(down.stateReason).toMatch(/probe failed/);
    expect(down.stateReason).toContain(dir);

    // Placement skips it: a volume pinned there cannot be placed, and nothing is left behind.
    const before = await snapshotWorld(s.api, [localDir]);
    expectError(await s.api.request('POST', '/v1/volumes', { body: { name: 'on-flappy', sizeBytes: MiB, backend: 'flappy' } }), 422, 'NO_VALID_BACKEND');
    expect(await snapshotWorld(s.api, [localDir])).toEqual(before);

    mkdirSync(dir);
    const up = await s.api.ok<Backend>('POST', `/v1/backends/${created.backend.id}/refresh`, 200);
    expect(up).toMatchObject({ state: 'enabled', stateReason: null });

    const evs = await eventsOf(created.backend.id);
    expect(evs.map((e) => [e.action, e.fromState, e.toState])).toEqual([
      ['create', null, 'enabled'],
      ['probe', 'enabled', 'offline'],
      ['probe', 'offline', 'enabled'],
    ]);
    expect(evs[1]?.message).toMatch(/probe failed/);
    expect(evs.slice(1).every((e) => e.actor === 'admin/bootstrap')).toBe(true);

    // A volume pinned there works again, and an empty backend can be deleted.
    const v = await s.api.ok<Submitted>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'on-flappy', sizeBytes: MiB, backend: 'flappy' } });
    expect(v.volume.backendName).toBe('flappy');
    expectError(await s.api.request('DELETE', '/v1/backends/flappy'), 409, 'BACKEND_IN_USE');
    await s.api.ok<Submitted>('DELETE', '/v1/volumes/on-flappy?wait=true', 200);
    const del = await s.api.request('DELETE', '/v1/backends/flappy');
    expect(del.status, del.text).toBe(204);
    expectError(await s.api.request('GET', '/v1/backends/flappy'), 404, 'BACKEND_NOT_FOUND');
  });

  it('a failed create on a pinned backend ends in error with the reason, and waits report the error', async () => {
    const dir = join(s.scratchDir, 'doomed');
    mkdirSync(dir);
    await s.api.ok('POST', '/v1/backends', 201, { body: { name: 'doomed', driver: `dir://${dir}` } });
    rmSync(dir, { recursive: true });
    const r = await s.api.request('POST', '/v1/volumes?wait=true', { body: { name: 'unlucky', sizeBytes: MiB, backend: 'doomed' } });
    const err = expectError(r, 503, 'BACKEND_UNAVAILABLE');
    expect(err.details.operationId).toMatch(/^op-/);
    const v = await pollUntil('the failed volume', async () => {
      const x = await s.api.ok<Volume>('GET', '/v1/volumes/unlucky', 200);
      return x.state === 'error' ? x : undefined;
    });
    expect(v.stateReason).toMatch(/^create failed: /);
    const evs = await eventsOf(v.id);
    expect(evs.map((e) => e.action)).toEqual(['create', 'create-failed']);
  });
});

// Client retries racing each other: on PostgreSQL the requests really run in parallel (a pool).
describe.each(['sqlite', 'postgres'] as const)('Idempotency-Key under concurrent retries on %s', (dialect) => {
  let srv: InjectServer;

  beforeAll(async () => {
    srv = await startInjectServer(dialect === 'postgres' ? { databaseUrl: await freshPostgresUrl('api') } : {});
  });
  afterAll(async () => {
    await srv.close();
  });

  it('concurrent retries with one Idempotency-Key all get the same operation', async () => {
    const key = `race-${String(process.pid)}`;
    const answers = await Promise.all(Array.from({ length: 5 }, () =>
      srv.api.request('POST', '/v1/volumes', { body: { name: 'raced', sizeBytes: MiB }, headers: { 'idempotency-key': key } })));
    for (const a of answers) expect([200, 202], a.text).toContain(a.status);
    const ops = new Set(answers.map((a) => (a.body as Submitted).operation.id));
    expect(ops.size).toBe(1);
    const vols = (await srv.api.ok<Page<Volume>>('GET', '/v1/volumes?limit=1000', 200)).items.filter((v) => v.name === 'raced');
    expect(vols).toHaveLength(1);
    const [opId] = [...ops];
    expect((await srv.api.ok<Operation>('GET', `/v1/operations/${opId ?? ''}?waitMs=60000`, 200)).state).toBe('succeeded');

    // The same for a resize and a delete retried concurrently.
    for (const [method, path, body] of [['POST', '/v1/volumes/raced/resize', { sizeBytes: 2 * MiB }], ['DELETE', '/v1/volumes/raced', undefined]] as const) {
      const k = `${key}-${method}`;
      const rs = await Promise.all(Array.from({ length: 5 }, () => srv.api.request(method, path, { ...(body ? { body } : {}), headers: { 'idempotency-key': k } })));
      for (const a of rs) expect([200, 202], a.text).toContain(a.status);
      const ids = new Set(rs.map((a) => (a.body as Submitted).operation.id));
      expect(ids.size, `${method} ${path}`).toBe(1);
      const [id] = [...ids];
      expect((await srv.api.ok<Operation>('GET', `/v1/operations/${id ?? ''}?waitMs=60000`, 200)).state).toBe('succeeded');
    }
  });
});
