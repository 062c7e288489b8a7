import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import type { StowageEvent } from '../../src/core/schemas/event-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { clientFor, ensureBuilt, killAllSpawned, pollUntil, reachedFailpoints, spawnServer } from '../helpers/server.js';
import { assertDirMatches, cleanupRuns, newRun } from './recovery-kit.js';

const MiB = 1024 ** 2;

interface Submitted { volume: Volume; operation: Operation }
interface Page<T> { items: T[]; nextCursor: string | null }

// Two `serve` replicas on one PostgreSQL: when the one running an operation is killed, the other
// takes the operation over once the lease expires, without any restart.
describe('replica takeover on postgres', () => {
  beforeAll(async () => {
    await ensureBuilt();
  });
  afterEach(async () => {
    await killAllSpawned();
    cleanupRuns();
  });

  it.each([
    'volume.create/provision:after',
    'volume.create/activate:before',
  ])('the surviving replica finishes an operation whose worker died at %s', async (failpoint) => {
    const run = await newRun('postgres');
    const base = { dataDir: run.dataDir, ...(run.databaseUrl !== undefined ? { databaseUrl: run.databaseUrl } : {}) };
    const setup = await spawnServer(base);
    const keeper = (await clientFor(setup).ok<Submitted>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'keeper', sizeBytes: MiB } })).volume;
    expect(await setup.stop()).toEqual({ code: 0, signal: null });

    const a = await spawnServer({ ...base, failpoints: `${failpoint}=pause` });
    const apiA = clientFor(a);
    const submitted = await apiA.ok<Submitted>('POST', '/v1/volumes?wait=false', 202, { body: { name: 'handed-over', sizeBytes: 2 * MiB } });
    await pollUntil(`replica A at ${failpoint}`, async () => (reachedFailpoints(run.dataDir).includes(failpoint) ? true : undefined));

    // Replica B joins the same database (it finds the token and the backend already there).
    const b = await spawnServer(base);
    const apiB = clientFor(b);
    expect((await apiB.ok<Page<{ name: string }>>('GET', '/v1/backends', 200)).items.map((x) => x.name)).toEqual(['local']);

    await a.kill9();
    const op = await pollUntil('replica B to finish the operation', async () => {
      const o = await apiB.ok<Operation>('GET', `/v1/operations/${submitted.operation.id}`, 200);
      return o.state === 'succeeded' || o.state === 'failed' ? o : undefined;
    });
    expect(op.state, JSON.stringify(op.error)).toBe('succeeded');
    expect(op.attempts).toBe(2);
    expect(op.stepsDone.map((x) => x.name)).toEqual(['provision', 'activate']);
    const vols = (await apiB.ok<Page<Volume>>('GET', '/v1/volumes', 200)).items;
    expect(vols.map((v) => [v.name, v.state, v.sizeBytes])).toEqual([['handed-over', 'available', 2 * MiB], ['keeper', 'available', MiB]]);
    expect(vols.find((v) => v.name === 'keeper')?.id).toBe(keeper.id);
    assertDirMatches(run.localDir, vols);
    const evs = (await apiB.ok<Page<StowageEvent>>('GET', `/v1/events?resource=${submitted.volume.id}&after=0`, 200)).items;
    expect(evs.map((e) => e.action)).toEqual(['create', 'created']);
    expect(reachedFailpoints(run.dataDir)).toEqual([failpoint]);
    expect(await b.stop()).toEqual({ code: 0, signal: null });
  });
});
