import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_SIZE_BYTES } from '../../src/core/sizes.js';
import { startInjectServer, type InjectServer } from '../helpers/inject.js';
import { expectError, snapshotWorld } from './api-kit.js';

const MiB = 1024 ** 2;
const PWNED = `/tmp/stowage-pwned-${String(process.pid)}`;

interface Submitted { volume: { id: string; name: string; state: string; sizeBytes: number }; operation: { id: string; state: string } }

/** One bad request and the error it must get. */
interface BadCase {
  readonly what: string;
  readonly method: string;
  readonly path: string;
  readonly body?: unknown;
  readonly rawBody?: string;
  readonly contentType?: string;
  readonly status: number;
  readonly code: string | readonly string[];
  /** A word the message must contain, so it tells the caller what to fix. */
  readonly mentions?: RegExp;
}

const vol = (patch: Record<string, unknown>): Record<string, unknown> => ({ name: 'fresh', sizeBytes: MiB, ...patch });

const SIZE_CASES: BadCase[] = [
  { what: 'size 0', method: 'POST', path: '/v1/volumes', body: vol({ sizeBytes: 0 }), status: 400, code: 'VALIDATION_FAILED', mentions: /sizeBytes/ },
  { what: 'size -1', method: 'POST', path: '/v1/volumes', body: vol({ sizeBytes: -1 }), status: 400, code: 'VALIDATION_FAILED', mentions: /sizeBytes/ },
  { what: 'size 1.5', method: 'POST', path: '/v1/volumes', body: vol({ sizeBytes: 1.5 }), status: 400, code: 'VALIDATION_FAILED', mentions: /sizeBytes/ },
  { what: 'size "10G" (a string)', method: 'POST', path: '/v1/volumes', body: vol({ sizeBytes: '10G' }), status: 400, code: 'VALIDATION_FAILED', mentions: /sizeBytes/ },
  { what: 'size 2^60', method: 'POST', path: '/v1/volumes', body: vol({ sizeBytes: 2 ** 60 }), status: 400, code: 'INVALID_SIZE', mentions: /size/ },
  { what: 'size missing', method: 'POST', path: '/v1/volumes', body: { name: 'fresh' }, status: 400, code: 'VALIDATION_FAILED', mentions: /sizeBytes/ },
  { what: 'size null', method: 'POST', path: '/v1/volumes', body: vol({ sizeBytes: null }), status: 400, code: 'VALIDATION_FAILED', mentions: /sizeBytes/ },
  { what: 'size 2^53 + 2', method: 'POST', path: '/v1/volumes', body: vol({ sizeBytes: 2 ** 53 + 2 }), status: 400, code: 'INVALID_SIZE', mentions: /size/ },
  { what: 'size MAX_SIZE_BYTES + 1', method: 'POST', path: '/v1/volumes', body: vol({ sizeBytes: MAX_SIZE_BYTES + 1 }), status: 400, code: 'INVALID_SIZE', mentions: /larger than the maximum of 4 PiB/ },
  { what: 'size 2^60 says it is too large', method: 'POST', path: '/v1/volumes', body: vol({ sizeBytes: 2 ** 60 }), status: 400, code: 'INVALID_SIZE', mentions: /larger than the maximum/ },
  { what: 'size MAX_SIZE_BYTES (valid, but fits nowhere)', method: 'POST', path: '/v1/volumes', body: vol({ sizeBytes: MAX_SIZE_BYTES }), status: 422, code: 'NO_VALID_BACKEND', mentions: /cannot place/ },
];

const BAD_NAMES = ['a/b', '..', 'a..b', '../etc', 'a;b', '$(touch /tmp/stowage-pwned-PID)', '`id`', 'a b', ' a', 'a\nb', 'a\tb', 'a\u0000b', 'a\u001bb',
  '', 'x'.repeat(64), '-leading-dash', '.hidden', 'ünïcode', 'a\\b'].map((n) => n.replace('PID', String(process.pid)));

const NAME_CASES: BadCase[] = BAD_NAMES.map((name) => ({
  what: `volume name ${JSON.stringify(name)}`, method: 'POST', path: '/v1/volumes', body: vol({ name }), status: 400, code: ['INVALID_NAME', 'VALIDATION_FAILED'], mentions: /name/,
}));

const BACKEND_NAME_CASES: BadCase[] = ['a/b', '..', 'a..b', '$(touch /tmp/x)', 'a b', ''].map((name) => ({
  what: `backend name ${JSON.stringify(name)}`, method: 'POST', path: '/v1/backends', body: { name, driver: 'dir:///tmp/never-used' }, status: 400, code: ['INVALID_NAME', 'VALIDATION_FAILED'], mentions: /name/,
}));

const BODY_CASES: BadCase[] = [
  { what: 'an unknown field', method: 'POST', path: '/v1/volumes', body: vol({ color: 'red' }), status: 400, code: 'VALIDATION_FAILED', mentions: /additional|color/ },
  { what: 'an unknown field on a backend', method: 'POST', path: '/v1/backends', body: { name: 'b1', driver: 'dir:///tmp/never-used', shell: 'rm -rf /' }, status: 400, code: 'VALIDATION_FAILED' },
  { what: 'a text/plain body', method: 'POST', path: '/v1/volumes', rawBody: 'name=fresh', contentType: 'text/plain', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { what: 'a form body', method: 'POST', path: '/v1/volumes', rawBody: 'name=fresh&sizeBytes=1', contentType: 'application/x-www-form-urlencoded', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { what: 'broken JSON', method: 'POST', path: '/v1/volumes', rawBody: '{"name": "fresh", ', contentType: 'application/json', status: 400, code: 'VALIDATION_FAILED' },
  { what: 'a JSON array', method: 'POST', path: '/v1/volumes', body: [vol({})], status: 400, code: 'VALIDATION_FAILED' },
  { what: 'an empty JSON body', method: 'POST', path: '/v1/volumes', rawBody: '', contentType: 'application/json', status: 400, code: 'VALIDATION_FAILED' },
  { what: 'an unknown format', method: 'POST', path: '/v1/volumes', body: vol({ format: 'vmdk' }), status: 400, code: 'VALIDATION_FAILED', mentions: /format/ },
  { what: 'an unknown pinned backend', method: 'POST', path: '/v1/volumes', body: vol({ backend: 'nope' }), status: 404, code: 'BACKEND_NOT_FOUND', mentions: /nope/ },
  { what: 'an unknown query parameter', method: 'POST', path: '/v1/volumes?force=1', body: vol({}), status: 400, code: 'VALIDATION_FAILED' },
  { what: 'a bad Idempotency-Key', method: 'POST', path: '/v1/volumes', body: vol({}), status: 400, code: 'VALIDATION_FAILED' },
  { what: 'a __proto__ key', method: 'POST', path: '/v1/volumes', rawBody: '{"name":"fresh","sizeBytes":1048576,"__proto__":{"admin":true}}', contentType: 'application/json', status: 400, code: 'VALIDATION_FAILED' },
  { what: 'a list limit of 0', method: 'GET', path: '/v1/volumes?limit=0', status: 400, code: 'VALIDATION_FAILED', mentions: /limit/ },
  { what: 'a list limit above 1000', method: 'GET', path: '/v1/volumes?limit=100000', status: 400, code: 'VALIDATION_FAILED', mentions: /limit/ },
  { what: 'an unknown volume state filter', method: 'GET', path: '/v1/volumes?state=melted', status: 400, code: 'VALIDATION_FAILED' },
  { what: 'a non-numeric event cursor', method: 'GET', path: '/v1/events?cursor=1%20OR%201=1', status: 400, code: 'VALIDATION_FAILED' },
];

const DRIVER_CASES: BadCase[] = [
  { what: 'an unknown driver scheme', method: 'POST', path: '/v1/backends', body: { name: 'nfsb', driver: 'nfs://x' }, status: 400, code: 'UNKNOWN_DRIVER', mentions: /dir:\/\// },
  { what: 'a driver that is not a URI', method: 'POST', path: '/v1/backends', body: { name: 'nfsb', driver: 'not a uri' }, status: 400, code: 'INVALID_DRIVER_URI' },
  { what: 'a dir URI with a host', method: 'POST', path: '/v1/backends', body: { name: 'nfsb', driver: 'dir://host/srv' }, status: 400, code: 'INVALID_DRIVER_URI' },
  { what: 'a dir URI at the filesystem root', method: 'POST', path: '/v1/backends', body: { name: 'nfsb', driver: 'dir:///' }, status: 400, code: 'INVALID_DRIVER_URI' },
  { what: 'an unknown capability override', method: 'POST', path: '/v1/backends', body: { name: 'nfsb', driver: 'dir:///tmp/never-used', capabilityOverrides: { add: ['teleport'], remove: [] } }, status: 400, code: 'VALIDATION_FAILED' },
  { what: 'an overcommit ratio below 1', method: 'POST', path: '/v1/backends', body: { name: 'nfsb', driver: 'dir:///tmp/never-used', overcommitRatio: 0.5 }, status: 400, code: 'VALIDATION_FAILED' },
];

describe('bad input leaves nothing behind', () => {
  let s: InjectServer;
  let localDir: string;
  let existing: Submitted['volume'];

  beforeAll(async () => {
    s = await startInjectServer();
    localDir = join(s.dataDir, 'volumes');
    existing = (await s.api.ok<Submitted>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'taken', sizeBytes: 4 * MiB } })).volume;
  });
  afterAll(async () => {
    await s.close();
  });

  async function expectRejected(c: BadCase, headers: Record<string, string> = {}): Promise<{ code: string; message: string; details: Record<string, unknown> }> {
    const before = await snapshotWorld(s.api, [localDir]);
    const r = await s.api.request(c.method, c.path, {
      headers,
      ...(c.rawBody !== undefined ? { rawBody: c.rawBody, ...(c.contentType !== undefined ? { contentType: c.contentType } : {}) } : { body: c.body }),
    });
    const err = expectError(r, c.status, c.code);
    if (c.mentions) expect(err.message, c.what).toMatch(c.mentions);
    expect(await snapshotWorld(s.api, [localDir]), `${c.what} changed something`).toEqual(before);
    return err;
  }

  it.each(SIZE_CASES)('rejects $what', async (c) => {
    await expectRejected(c);
  });

  it.each(NAME_CASES)('rejects $what', async (c) => {
    await expectRejected(c);
    expect(existsSync(PWNED)).toBe(false);
  });

  it.each(BACKEND_NAME_CASES)('rejects $what', async (c) => {
    await expectRejected(c);
  });

  it.each(BODY_CASES)('rejects $what', async (c) => {
    await expectRejected(c, c.what === 'a bad Idempotency-Key' ? { 'idempotency-key': 'has spaces in it' } : {});
  });

  it.each(DRIVER_CASES)('rejects $what', async (c) => {
    const err = await expectRejected(c);
    if (err.code === 'UNKNOWN_DRIVER') expect(err.details.knownSchemes).toEqual(expect.arrayContaining(['dir']));
  });

  it('rejects a body over bodyLimitBytes with 413 PAYLOAD_TOO_LARGE', async () => {
    const big = 'x'.repeat(s.config.bodyLimitBytes + 1);
    await expectRejected({ what: 'an oversized body', method: 'POST', path: '/v1/volumes', body: vol({ name: big }), status: 413, code: 'PAYLOAD_TOO_LARGE' });
    await expectRejected({ what: 'an oversized backend body', method: 'POST', path: '/v1/backends', body: { name: 'big', driver: `dir:///${big}` }, status: 413, code: 'PAYLOAD_TOO_LARGE' });
  });

  it('rejects a duplicate volume name with 409 NAME_TAKEN', async () => {
    const err = await expectRejected({ what: 'a duplicate name', method: 'POST', path: '/v1/volumes', body: { name: 'taken', sizeBytes: MiB }, status: 409, code: 'NAME_TAKEN', mentions: /taken/ });
    expect(err.details).toMatchObject({ name: 'taken' });
  });

  it('rejects a duplicate backend name with 409 NAME_TAKEN', async () => {
    await expectRejected({ what: 'a duplicate backend', method: 'POST', path: '/v1/backends', body: { name: 'local', driver: `dir://${localDir}` }, status: 409, code: 'NAME_TAKEN', mentions: /local/ });
  });

  it('refuses to shrink with 409 SHRINK_NOT_SUPPORTED, and to "resize" to the same size', async () => {
    const err = await expectRejected({ what: 'a shrink', method: 'POST', path: `/v1/volumes/${existing.id}/resize`, body: { sizeBytes: MiB }, status: 409, code: 'SHRINK_NOT_SUPPORTED', mentions: /shrink/i });
    expect(err.details).toMatchObject({ sizeBytes: 4 * MiB, requested: MiB });
    await expectRejected({ what: 'a same-size resize', method: 'POST', path: '/v1/volumes/taken/resize', body: { sizeBytes: 4 * MiB }, status: 409, code: 'INVALID_STATE' });
    await expectRejected({ what: 'a resize to 0', method: 'POST', path: '/v1/volumes/taken/resize', body: { sizeBytes: 0 }, status: 400, code: ['INVALID_SIZE', 'VALIDATION_FAILED'] });
    await expectRejected({ what: 'a resize to "8G"', method: 'POST', path: '/v1/volumes/taken/resize', body: { sizeBytes: '8G' }, status: 400, code: 'VALIDATION_FAILED' });
    await expectRejected({ what: 'a resize to 2^60', method: 'POST', path: '/v1/volumes/taken/resize', body: { sizeBytes: 2 ** 60 }, status: 400, code: 'INVALID_SIZE' });
    await expectRejected({ what: 'a resize of nothing', method: 'POST', path: '/v1/volumes/ghost/resize', body: { sizeBytes: 8 * MiB }, status: 404, code: 'VOLUME_NOT_FOUND', mentions: /ghost/ });
  });

  it('refuses to delete a backend that holds volumes with 409 BACKEND_IN_USE and the count', async () => {
    const err = await expectRejected({ what: 'deleting a used backend', method: 'DELETE', path: '/v1/backends/local', status: 409, code: 'BACKEND_IN_USE', mentions: /1 volume/ });
    expect(err.details).toMatchObject({ backend: 'local', volumeCount: 1 });
  });

  it('answers 404 for unknown volumes, backends and operations', async () => {
    await expectRejected({ what: 'unknown volume', method: 'GET', path: '/v1/volumes/ghost', status: 404, code: 'VOLUME_NOT_FOUND' });
    await expectRejected({ what: 'unknown volume delete', method: 'DELETE', path: '/v1/volumes/ghost', status: 404, code: 'VOLUME_NOT_FOUND' });
    await expectRejected({ what: 'unknown backend', method: 'GET', path: '/v1/backends/ghost', status: 404, code: 'BACKEND_NOT_FOUND' });
    await expectRejected({ what: 'unknown backend delete', method: 'DELETE', path: '/v1/backends/ghost', status: 404, code: 'BACKEND_NOT_FOUND' });
    await expectRejected({ what: 'unknown operation', method: 'GET', path: '/v1/operations/op-aaaaaaaaaaaaaaaaaaaa', status: 404, code: 'OPERATION_NOT_FOUND' });
  });

  it('still has exactly the one volume file it started with', async () => {
    const w = await snapshotWorld(s.api, [localDir]);
    expect(w.files).toEqual([join(localDir, `${existing.id}.raw`)]);
    expect(w.volumes).toEqual([`${existing.id}:available:${String(4 * MiB)}`]);
  });
});
