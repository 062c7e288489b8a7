import { mkdirSync, statfsSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/core/schemas/backend-schema.js';
import { makeTempDir, pollUntil, removeTempDir } from '../helpers/server.js';
import { startInjectServer, type InjectServer } from '../helpers/inject.js';

interface Answer { readonly backend: Backend }
interface ErrorBody { readonly code: string; readonly message: string; readonly details: Record<string, unknown> }

describe('backend directories: normalised, never shared, capacity split honestly', () => {
  let s: InjectServer;
  let root: string;
  beforeAll(async () => {
    s = await startInjectServer();
    root = makeTempDir('stowage-backend-paths-');
    for (const d of ['b1', 'b2', 'b3']) mkdirSync(join(root, d));
  });
  afterAll(async () => {
    await s.close();
    removeTempDir(root);
  });

  const list = async (): Promise<Backend[]> => (await s.api.ok<{ items: Backend[] }>('GET', '/v1/backends', 200)).items;
  const activityOf = async (name: string): Promise<{ probe: { seq: number }; capacity: { totalBytes: number } }> => s.api.ok('GET', `/v1/backends/${name}`, 200);
  /** The probe counters of the backends that share b2's filesystem. */
  const probeSeqs = async (): Promise<Record<'local' | 'b1', number>> => ({ local: (await activityOf('local')).probe.seq, b1: (await activityOf('b1')).probe.seq });
  /**
   * Waits until local and b1 each finished a probe after `seqs` was read and show `totalBytes`: the
   * background reprobe after a registration or deletion. A pass of an earlier change may still be
   * finishing when `seqs` is read, so the first new probe is not always the one that counts b2.
   */
  const reprobedTo = (seqs: Record<'local' | 'b1', number>, totalBytes: number): Promise<true> => pollUntil(`local and b1 probed again, to ${String(totalBytes)} bytes each`, async () => {
    const [local, b1] = [await activityOf('local'), await activityOf('b1')];
    const probed = local.probe.seq > seqs.local && b1.probe.seq > seqs.b1;
    return probed && local.capacity.totalBytes === totalBytes && b1.capacity.totalBytes === totalBytes ? true : undefined;
  }, 30_000, 20);
  const create = async (name: string, driver: string): Promise<Backend> => (await s.api.ok<Answer>('POST', '/v1/backends', [200, 201], { body: { name, driver } })).backend;

  it('stores the path the driver uses: %-decoded once and normalised', async () => {
    const b = await create('b1', `dir://${root}/b2/..%2Fb1/`);
    expect(b.driver).toBe(`dir://${root}/b1`);
    expect((await list()).find((x) => x.name === 'b1')?.driver).toBe(`dir://${root}/b1`);
  });

  it('says what is wrong with a URI as typed', async () => {
    const r = await s.api.request('POST', '/v1/backends', { body: { name: 'bad', driver: 'dir:///etc/../..' } });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ code: 'INVALID_DRIVER_URI' });
    expect((r.body as ErrorBody).message).toContain('"dir:///etc/../.."');
    expect((r.body as ErrorBody).message).toMatch(/resolves to the filesystem root/);
  });

  it('refuses a directory that is, is inside or contains another backend\'s, naming it, and changes nothing', async () => {
    symlinkSync(join(root, 'b1'), join(root, 'link-to-b1'));
    const before = await list();
    const b1 = `${root}/b1`;
    const uris = [
      `dir://${b1}`, `dir://${root}/b2/../b1`, `dir://${b1}/inner`, `dir://${root}`, `dir://${root}/link-to-b1`,
      `tgt://10.99.0.1:3260?backing=dir://${b1}&control=7`, `tgt://10.99.0.1:3260?backing=btrfs://${b1}/pool&control=7`,
    ];
    for (const driver of uris) {
      const r = await s.api.request('POST', '/v1/backends', { body: { name: 'twin', driver } });
      expect(r.status, driver).toBe(409);
      expect(r.body, driver).toMatchObject({ code: 'BACKEND_PATH_OVERLAP', details: { backend: 'b1' } });
      expect((r.body as ErrorBody).message, driver).toContain('backend b1');
    }
    for (const driver of [`dir://${s.dataDir}`, `dir://${s.dataDir}/../${s.dataDir.split('/').pop() ?? ''}`, `dir://${s.dataDir}/elsewhere`, `dir://${dirname(s.dataDir)}`]) {
      const r = await s.api.request('POST', '/v1/backends', { body: { name: 'twin', driver } });
      expect(r.status, driver).toBe(409);
      expect(r.body, driver).toMatchObject({ code: 'BACKEND_PATH_OVERLAP' });
    }
    expect((await list()).map((b) => b.id)).toEqual(before.map((b) => b.id));
  });

  it('splits one filesystem\'s capacity between the backends on it, so the pool never counts it twice', async () => {
    const fs = statfsSync(root);
    const total = fs.blocks * fs.bsize;
    // local (in the data dir), b1 and b2 are all on the temp filesystem.
    const beforeCreate = await probeSeqs();
    await create('b2', `dir://${root}/b2`);
    // b2's own probe ran in the request; the others' runs in the background after it.
    expect((await list()).find((b) => b.name === 'b2')?.capacity.totalBytes).toBe(Math.floor(total / 3));
    await reprobedTo(beforeCreate, Math.floor(total / 3));
    const three = (await list()).filter((b) => ['local', 'b1', 'b2'].includes(b.name));
    expect(three).toHaveLength(3);
    for (const b of three) expect(b.capacity.totalBytes, b.name).toBe(Math.floor(total / 3));
    expect(three.reduce((sum, b) => sum + b.capacity.freeBytes, 0)).toBeLessThanOrEqual(fs.bavail * fs.bsize + 3 * 1024 * 1024);
    const beforeDelete = await probeSeqs();
    await s.api.ok('DELETE', '/v1/backends/b2', [200, 204]);
    await reprobedTo(beforeDelete, Math.floor(total / 2));
    const two = (await list()).filter((b) => ['local', 'b1'].includes(b.name));
    for (const b of two) expect(b.capacity.totalBytes, b.name).toBe(Math.floor(total / 2));
  });
});
