import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ID_PREFIXES } from '../../src/core/ids.js';
import { startInjectServer, type InjectServer } from '../helpers/inject.js';
import { expectError, inject, snapshotWorld } from './api-kit.js';

/**
 * The defects found by using the API as an attacker or a careless client would: each request
 * here once got a 500, a silently changed value, a resource it should not have, or leaked a secret.
 */
const MiB = 1024 ** 2;
const LISTS = ['/v1/volumes', '/v1/operations', '/v1/events', '/v1/hosts', '/v1/snapshots', '/v1/attachments', '/v1/classes', '/v1/backends', '/v1/migrations'];
const BAD_LIMITS = ['1e309', '-1e309', '1.5', 'abc', '99999999999999999999', '1e2', '0x10', '-5', ''];

interface Submitted { volume: { id: string; name: string }; operation: { id: string } }
interface PageT { items: { id: string; name?: string }[]; nextCursor: string | null }

describe('the API against hostile and careless input', () => {
  let s: InjectServer;
  const lines: string[] = [];

  beforeAll(async () => {
    // A real pino logger at info into memory: what the operator's log would hold.
    const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(chunk.toString('utf8')); cb(); } });
    s = await startInjectServer({ operationPollMs: 20 }, pino({ level: 'info' }, sink));
  });
  afterAll(async () => { await s.close(); });

  it.each(LISTS)('%s refuses every limit that is not a plain integer in range with 400 VALIDATION_FAILED', async (path) => {
    for (const limit of BAD_LIMITS) {
      const e = expectError(await inject(s, 'GET', `${path}?limit=${encodeURIComponent(limit)}`), 400, 'VALIDATION_FAILED');
      expect(e.message, `limit=${limit}`).toMatch(/limit/);
    }
    expect((await inject(s, 'GET', `${path}?limit=1000`)).status).toBe(200);
  });

  it('refuses names shaped like any of our ids, for every named resource, and changes nothing', async () => {
    const a = await s.api.ok<Submitted>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'victim', sizeBytes: MiB } });
    const before = await snapshotWorld(s.api, []);
    const shaped = [a.volume.id, a.volume.id.toUpperCase(), ...Object.values(ID_PREFIXES).map((p) => `${p}-abcdefghijklmnopqrst`)];
    for (const name of shaped) {
      for (const [path, body] of [
        ['/v1/volumes', { name, sizeBytes: MiB }], ['/v1/hosts', { name }], ['/v1/backends', { name, driver: 'dir:///tmp/never-used' }],
        ['/v1/snapshots', { volume: 'victim', name }], ['/v1/classes', { name }],
      ] as const) {
        const e = expectError(await inject(s, 'POST', path, { body }), 400, 'INVALID_NAME');
        expect(e.message, `${path} ${name}`).toContain('id');
      }
    }
    expect(await snapshotWorld(s.api, [])).toEqual(before);
    // The id still reaches the victim.
    expect((await s.api.ok<{ name: string }>('GET', `/v1/volumes/${a.volume.id}`, 200)).name).toBe('victim');
  });

  it('never coerces a body: true, 1e309 and inexact integers are 400s, and nothing is created', async () => {
    const before = await snapshotWorld(s.api, []);
    const cases: [string, string, string, RegExp][] = [
      ['/v1/volumes', `{"name": true, "sizeBytes": ${String(MiB)}}`, 'VALIDATION_FAILED', /name/],
      ['/v1/hosts', '{"name": true}', 'VALIDATION_FAILED', /name/],
      ['/v1/hosts', '{"name": 1e309}', 'VALIDATION_FAILED', /out of range/],
      ['/v1/hosts', '{"name": 12345}', 'VALIDATION_FAILED', /name/],
      ['/v1/volumes', '{"name": "big", "sizeBytes": 1e309}', 'VALIDATION_FAILED', /out of range/],
      ['/v1/volumes', '{"name": "big", "sizeBytes": -1e309}', 'VALIDATION_FAILED', /out of range/],
      ['/v1/volumes', '{"name": "big", "sizeBytes": 18446744073709551617}', 'VALIDATION_FAILED', /cannot be represented exactly/],
      ['/v1/volumes', '{"name": "big", "sizeBytes": 18446744073709551616}', 'INVALID_SIZE', /size 18446744073709551616 is larger than the maximum/],
      ['/v1/volumes', `{"name": "big", "sizeBytes": ${JSON.stringify(2 ** 60)}}`, 'INVALID_SIZE', /larger than the maximum/],
      ['/v1/backends', '{"name": "b", "driver": "dir:///tmp/never-used", "cost": "5"}', 'VALIDATION_FAILED', /cost/],
      ['/v1/volumes', `{"name": "str", "sizeBytes": "${String(MiB)}"}`, 'VALIDATION_FAILED', /sizeBytes/],
    ];
    for (const [path, raw, code, mentions] of cases) {
      const e = expectError(await inject(s, 'POST', path, { rawBody: raw }), 400, code);
      expect(e.message, raw).toMatch(mentions);
    }
    expect(await snapshotWorld(s.api, [])).toEqual(before);
    expect((await s.api.ok<PageT>('GET', '/v1/hosts', 200)).items).toEqual([]);
    // A string holding digits or "1e309" is just a string.
    expect((await inject(s, 'POST', '/v1/hosts', { rawBody: '{"name": "n1e309", "addresses": []}' })).status).toBe(201);
    await s.api.ok('DELETE', '/v1/hosts/n1e309', 204);
  });

  it('answers 415 to a JSON body in any charset but UTF-8', async () => {
    for (const ct of ['application/json; charset=utf-16', 'application/json; charset=UTF-16LE', 'application/json;charset="latin1"']) {
      expectError(await inject(s, 'POST', '/v1/hosts', { rawBody: '{"name":"cs"}', contentType: ct }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    }
    expect((await s.api.request('GET', '/v1/hosts/cs')).status).toBe(404);
    expect((await inject(s, 'POST', '/v1/hosts', { rawBody: '{"name":"cs"}', contentType: 'application/json; charset=utf-8' })).status).toBe(201);
  });

  it('validates agent reports as POST /v1/hosts does, and an unknown host is 404 (not created)', async () => {
    const report = { addresses: ['10.99.202.2'], connectors: ['file'], instances: ['vm1'], connected: [] };
    expectError(await inject(s, 'POST', '/v1/agents/stranger/report', { body: report }), 404, 'HOST_NOT_FOUND');
    expect((await s.api.request('GET', '/v1/hosts/stranger')).status).toBe(404);
    await s.api.ok('POST', '/v1/hosts', 201, { body: { name: 'hv-r', addresses: ['10.99.202.2'] } });
    const e = expectError(await inject(s, 'POST', '/v1/agents/hv-r/report', { body: { ...report, addresses: ['not-an-ip;rm -rf /'] } }), 400, 'VALIDATION_FAILED');
    expect(e.message).toContain('not an IP address');
    expectError(await inject(s, 'POST', '/v1/agents/hv-r/report', { body: { ...report, initiatorName: 'iqn.bogus;reboot' } }), 400, 'VALIDATION_FAILED');
    const host = await s.api.ok<{ addresses: string[]; state: string }>('GET', '/v1/hosts/hv-r', 200);
    expect(host).toMatchObject({ addresses: ['10.99.202.2'], state: 'unknown' });
    expect((await inject(s, 'POST', '/v1/agents/hv-r/report', { body: report })).status).toBe(200);
    expect((await s.api.ok<{ state: string }>('GET', '/v1/hosts/hv-r', 200)).state).toBe('up');
  });

  it('keeps query strings out of the request log', async () => {
    const secret = `s3cr3t-${String(process.pid)}`;
    await s.api.request('GET', `/v1/volumes?token=${secret}`);
    await s.api.request('GET', `/v1/operations?limit=5&token=${secret}`);
    const log = lines.join('');
    expect(log).toContain('/v1/operations?[redacted]');
    expect(log).not.toContain(secret);
  });

  it('pages every list with limit and cursor, each item exactly once, in a stable order', async () => {
    for (const n of ['pg-c', 'pg-a', 'pg-e', 'pg-b', 'pg-d']) await s.api.ok('POST', '/v1/hosts', 201, { body: { name: n } });
    for (const n of ['cl-b', 'cl-a', 'cl-c']) await s.api.ok('POST', '/v1/classes', 201, { body: { name: n } });
    for (const n of ['sn-2', 'sn-1', 'sn-3']) await s.api.ok('POST', '/v1/snapshots?wait=true', 200, { body: { volume: 'victim', name: n } });
    for (const path of ['/v1/hosts', '/v1/classes', '/v1/snapshots', '/v1/backends', '/v1/attachments', '/v1/migrations']) {
      const all = await s.api.ok<PageT>('GET', `${path}?limit=1000`, 200);
      expect(all.nextCursor, path).toBeNull();
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: PageT = await s.api.ok<PageT>('GET', `${path}?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, 200);
        expect(page.items.length, path).toBeLessThanOrEqual(2);
        seen.push(...page.items.map((x) => x.id));
        cursor = page.nextCursor;
        pages++;
      } while (cursor !== null && pages < 100);
      expect(seen, path).toEqual(all.items.map((x) => x.id));
    }
    const hosts = await s.api.ok<PageT>('GET', '/v1/hosts?limit=3', 200);
    expect(hosts.items.map((h) => h.name)).toEqual(['cs', 'hv-r', 'pg-a']);
    expect(hosts.nextCursor).not.toBeNull();
    expectError(await inject(s, 'GET', '/v1/hosts?cursor=not-a-cursor'), 400, 'VALIDATION_FAILED');
  });
});
