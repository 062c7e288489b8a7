import { afterEach, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/core/schemas/backend-schema.js';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { TRANSITIONAL_VOLUME_STATES, type VolumeState } from '../../src/core/states.js';
import {
  ApiClient, cliConfigPathOf, killAllSpawned, makeTempDir, reachedFailpoints, readToken, removeTempDir, spawnServer, type SpawnedServer,
} from '../helpers/server.js';

const GiB = 1024 ** 3;
const SIZE = 4 * GiB;
const GROWN = 6 * GiB;

/** How one transitional state is reached: the failpoint that holds its operation, and the request that starts it. */
interface HeldState {
  readonly failpoint: string;
  /** Bytes the volume has (or is being given) on the backend while held. */
  readonly onBackendBytes: number;
  /** Brings volume `v` (available, qcow2, SIZE) into the state; returns the operation left paused. */
  start(api: ApiClient): Promise<Operation>;
}

const HELD: Readonly<Record<Exclude<VolumeState, 'available' | 'deleted' | 'error'>, HeldState>> = {
  creating: {
    failpoint: 'volume.create/provision:before',
    onBackendBytes: SIZE,
    start: async (api) => (await api.ok<{ operation: Operation }>('POST', '/v1/volumes', 202, { body: { name: 'v', sizeBytes: SIZE, format: 'qcow2' } })).operation,
  },
  resizing: {
    failpoint: 'volume.resize/grow:before',
    onBackendBytes: GROWN,
    start: async (api) => (await api.ok<{ operation: Operation }>('POST', '/v1/volumes/v/resize', 202, { body: { sizeBytes: GROWN } })).operation,
  },
  reverting: {
    failpoint: 'volume.revert/revert:before',
    onBackendBytes: SIZE,
    start: async (api) => {
      await api.ok('POST', '/v1/snapshots?wait=true', 200, { body: { volume: 'v', name: 's' } });
      return (await api.ok<{ operation: Operation }>('POST', '/v1/volumes/v/revert', 202, { body: { snapshot: 's' } })).operation;
    },
  },
  deleting: {
    failpoint: 'volume.delete/destroy:before',
    onBackendBytes: SIZE,
    start: async (api) => (await api.ok<{ operation: Operation }>('DELETE', '/v1/volumes/v', 202)).operation,
  },
};

async function waitFor(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function localBackend(api: ApiClient): Promise<Backend> {
  const page = await api.ok<{ items: Backend[] }>('GET', '/v1/backends', 200);
  const b = page.items.find((x) => x.name === 'local');
  if (!b) throw new Error('no local backend');
  return b;
}

/**
 * Placement at the capacity edge while a volume sits in each transitional state, held there by a
 * `pause` failpoint in a real server: what the backend holds for that volume must still count, so a
 * create that would fit only if those bytes were forgotten is refused with 422, and one that fits in
 * what is really left is placed (the edge is exact, not just "something fails").
 */
describe('placement never forgets a volume in a transitional state', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await killAllSpawned();
    for (const d of dirs.splice(0)) removeTempDir(d);
  });

  it('covers every transitional state of the volume table', () => {
    expect([...TRANSITIONAL_VOLUME_STATES].sort()).toEqual(Object.keys(HELD).sort());
  });

  it.each(TRANSITIONAL_VOLUME_STATES)('while a volume is %s, a create that fits only without its bytes gets 422', async (state) => {
    const held = HELD[state as keyof typeof HELD];
    const dataDir = makeTempDir('stowage-edge-');
    dirs.push(dataDir);
    const server: SpawnedServer = await spawnServer({ dataDir, failpoints: `${held.failpoint}=pause` });
    const api = new ApiClient(server.url, readToken(cliConfigPathOf(dataDir)));

    // What placement may promise on the empty backend; everything below is measured from it.
    const empty = (await localBackend(api)).capacity.usableBytes;
    expect(empty).toBeGreaterThan(2 * GROWN);
    if (state !== 'creating') await api.ok('POST', '/v1/volumes?wait=true', 200, { body: { name: 'v', sizeBytes: SIZE, format: 'qcow2' } });
    const op = await held.start(api);
    await waitFor(`${held.failpoint} to be reached`, () => reachedFailpoints(dataDir).includes(held.failpoint));
    const v = await api.ok<Volume>('GET', '/v1/volumes/v', 200);
    expect(v.state).toBe(state);
    expect((await api.ok<Operation>('GET', `/v1/operations/${op.id}`, 200)).state).toBe('running');

    const b = await localBackend(api);
    const left = b.capacity.usableBytes;
    // Never less counted than the volume has on the backend (a copied snapshot may count on top).
    expect(empty - left).toBeGreaterThanOrEqual(held.onBackendBytes);

    const tooBig = empty - held.onBackendBytes + 1;
    const r = await api.request('POST', '/v1/volumes', { body: { name: 'w', sizeBytes: tooBig, format: 'qcow2' } });
    expect(r.status, r.text).toBe(422);
    expect(r.body).toMatchObject({ code: 'NO_VALID_BACKEND' });
    expect((await api.request('GET', '/v1/volumes/w')).status).toBe(404);

    // What is really left still fits: the refusal above is the edge, not a backend that refuses everything.
    const fits = await api.ok<{ winner: string | null }>('POST', '/v1/placements/dry-run', 200, { body: { name: 'w', sizeBytes: left, format: 'qcow2' } });
    expect(fits.winner).toBe('local');
    const over = await api.ok<{ winner: string | null }>('POST', '/v1/placements/dry-run', 200, { body: { name: 'w', sizeBytes: left + 1, format: 'qcow2' } });
    expect(over.winner).toBeNull();
  });
});
