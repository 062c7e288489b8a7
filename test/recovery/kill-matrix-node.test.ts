import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import { NODE_CALLABLE } from '../../src/nodes/node-calls.js';
import type { ApiClient, ApiResponse } from '../helpers/server.js';
import { ensureBuilt, pollUntil } from '../helpers/server.js';
import { expectStoreConsistent } from './matrix-kit.js';
import { NodeWorld } from './node-kill-kit.js';

const MiB = 1024 ** 2;
const SIZE = 8 * MiB;
const GROWN = 16 * MiB;

type Prepared = Readonly<Record<string, string>>;

/** One operation kind driven through a node, and the node methods (NODE_CALLABLE) it calls on the way. */
interface NodeScenario {
  readonly label: string;
  readonly calls: readonly string[];
  prepare(api: ApiClient, name: string): Promise<Prepared>;
  submit(api: ApiClient, p: Prepared, name: string): Promise<ApiResponse>;
  verify(api: ApiClient, p: Prepared, op: Operation): Promise<void>;
}

interface VolumeView { id: string; state: string; sizeBytes: number }

const need = (p: Prepared, k: string): string => {
  const v = p[k];
  if (v === undefined) throw new Error(`nothing prepared as ${k}`);
  return v;
};
const volume = async (api: ApiClient, name: string, backend: string): Promise<string> =>
  (await api.ok<{ volume: VolumeView }>('POST', '/v1/volumes?wait=true', [200, 201], { body: { name, sizeBytes: SIZE, backend } })).volume.id;
const volumeState = async (api: ApiClient, id: string): Promise<VolumeView> => api.ok<VolumeView>('GET', `/v1/volumes/${id}`, 200);
const grantsOf = async (api: ApiClient, vol: string): Promise<{ hostName: string; state: string }[]> =>
  (await api.ok<{ items: { hostName: string; state: string }[] }>('GET', `/v1/volumes/${vol}/grants`, 200)).items;

/** A plain create on backend `backend` (nd: dir, nt: tgt). */
const createOn = (backend: string): NodeScenario => ({
  label: `volume.create on ${backend === 'nd' ? 'dir' : 'tgt'}`, calls: ['driver.createVolume'],
  prepare: () => Promise.resolve({}),
  submit: (api, _p, name) => api.request('POST', '/v1/volumes?wait=false', { body: { name, sizeBytes: SIZE, backend } }),
  verify: async (api, _p, op) => { expect((await volumeState(api, op.targetId)).state).toBe('available'); },
});

/** Deleting a volume of backend `backend`. */
const deleteOn = (backend: string): NodeScenario => ({
  label: `volume.delete on ${backend === 'nd' ? 'dir' : 'tgt'}`, calls: ['driver.deleteVolume'],
  prepare: async (api, name) => ({ vol: await volume(api, name, backend) }),
  submit: (api, p) => api.request('DELETE', `/v1/volumes/${need(p, 'vol')}?wait=false`),
  verify: async (api, p) => { expect((await volumeState(api, need(p, 'vol'))).state).toBe('deleted'); },
});

const SCENARIOS: readonly NodeScenario[] = [
  createOn('nd'),
  {
    label: 'volume.resize on dir', calls: ['driver.resizeVolume'],
    prepare: async (api, name) => ({ vol: await volume(api, name, 'nd') }),
    submit: (api, p) => api.request('POST', `/v1/volumes/${need(p, 'vol')}/resize?wait=false`, { body: { sizeBytes: GROWN } }),
    verify: async (api, p) => { expect(await volumeState(api, need(p, 'vol'))).toMatchObject({ state: 'available', sizeBytes: GROWN }); },
  },
  deleteOn('nd'),
  {
    label: 'snapshot.create on dir', calls: ['snapshots.create'],
    prepare: async (api, name) => ({ vol: await volume(api, name, 'nd') }),
    submit: (api, p, name) => api.request('POST', '/v1/snapshots?wait=false', { body: { volume: need(p, 'vol'), name: `${name}-s` } }),
    verify: async (api, _p, op) => { expect((await api.ok<{ state: string }>('GET', `/v1/snapshots/${op.targetId}`, 200)).state).toBe('available'); },
  },
  {
    label: 'snapshot.delete on dir', calls: ['snapshots.delete'],
    prepare: async (api, name) => {
      const vol = await volume(api, name, 'nd');
      const s = await api.ok<{ snapshot: { id: string } }>('POST', '/v1/snapshots?wait=true', [200, 201], { body: { volume: vol, name: `${name}-s` } });
      return { vol, snap: s.snapshot.id };
    },
    submit: (api, p) => api.request('DELETE', `/v1/snapshots/${need(p, 'snap')}?wait=false`),
    verify: async (api, p) => {
      const r = await api.request('GET', `/v1/snapshots/${need(p, 'snap')}`);
      expect(r.status === 404 || (r.body as { state?: string }).state === 'deleted', r.text).toBe(true);
    },
  },
  {
    label: 'volume.create (clone of a snapshot, by the backend) on dir', calls: ['clones.clone'],
    prepare: async (api, name) => {
      const vol = await volume(api, `${name}-src`, 'nd');
      const s = await api.ok<{ snapshot: { id: string } }>('POST', '/v1/snapshots?wait=true', [200, 201], { body: { volume: vol, name: `${name}-s` } });
      return { snap: s.snapshot.id };
    },
    submit: (api, p, name) => api.request('POST', '/v1/volumes?wait=false', { body: { name, fromSnapshot: need(p, 'snap') } }),
    verify: async (api, _p, op) => { expect((await volumeState(api, op.targetId)).state).toBe('available'); },
  },
  {
    // dir on a plain filesystem has no clone offload: the bytes stream out of the node and back in.
    label: 'volume.create (streamed copy of a volume) on dir', calls: ['driver.createVolume', 'data.read', 'data.write'],
    prepare: async (api, name) => ({ src: await volume(api, `${name}-src`, 'nd') }),
    submit: (api, p, name) => api.request('POST', '/v1/volumes?wait=false', { body: { name, fromVolume: need(p, 'src'), backend: 'nd' } }),
    verify: async (api, _p, op) => {
      expect((await volumeState(api, op.targetId)).state).toBe('available');
      expect(op.stepsDone.map((x) => x.note ?? '').join('\n')).toContain('streamed copy');
    },
  },
  createOn('nt'),
  deleteOn('nt'),
  {
    label: 'grant.create on tgt', calls: ['access.grant'],
    prepare: async (api, name) => ({ vol: await volume(api, name, 'nt') }),
    submit: (api, p) => api.request('POST', `/v1/volumes/${need(p, 'vol')}/grants?wait=false`, { body: { host: 'h1', mode: 'rw' } }),
    verify: async (api, p) => { expect((await grantsOf(api, need(p, 'vol'))).map((g) => [g.hostName, g.state])).toEqual([['h1', 'active']]); },
  },
  {
    label: 'grant.revoke on tgt', calls: ['access.revoke'],
    prepare: async (api, name) => {
      const vol = await volume(api, name, 'nt');
      await api.ok('POST', `/v1/volumes/${vol}/grants?wait=true`, 200, { body: { host: 'h1', mode: 'ro' } });
      await api.ok('POST', `/v1/volumes/${vol}/grants?wait=true`, 200, { body: { host: 'h2', mode: 'ro' } });
      return { vol };
    },
    submit: (api, p) => api.request('DELETE', `/v1/volumes/${need(p, 'vol')}/grants/h1?wait=false`),
    verify: async (api, p) => { expect((await grantsOf(api, need(p, 'vol'))).map((g) => [g.hostName, g.state])).toEqual([['h2', 'active']]); },
  },
];

/** Node methods no operation of this matrix calls mid-flight: reads, and the sync's own calls (killed there, the sync just runs again). */
const NOT_OPERATION_CALLS = new Set(['driver.probe', 'driver.listVolumes', 'access.list', 'exports.reconcile', 'exports.drift', 'revert.revert']);

/** Every node-callable method, from the node's allow-list. */
const CALLABLE: readonly string[] = Object.entries(NODE_CALLABLE).flatMap(([target, methods]) => Object.keys(methods).map((m) => `${target}.${m}`));

/** The node's data routes' points (nodes/data-routes.ts): a read has no `after`, its answer is the stream. */
const DATA_POINTS: readonly string[] = ['data.read:before', 'data.write:before', 'data.write:after'];

/** The cells: every callable method × each scenario calling it × before/after, and each data point of a streaming scenario. */
const CELLS = [
  ...CALLABLE.flatMap((call) => (['before', 'after'] as const).map((when) => `${call}:${when}`)),
  ...DATA_POINTS,
].flatMap((failpoint) => SCENARIOS.filter((s) => s.calls.includes(failpoint.replace(/:.*$/, ''))).map((scenario) => ({ scenario, failpoint })));

describe('kill -9 of stowage node at every driver call of an operation (real serve + node, dir and tgt backends on the node)', () => {
  const w = new NodeWorld();
  let n = 0;

  beforeAll(async () => {
    await ensureBuilt();
    await w.setUp();
  }, 240_000);
  afterAll(async () => { await w.tearDown(); }, 60_000);

  it('covers every mutating node-callable method', () => {
    expect(CALLABLE.filter((c) => !NOT_OPERATION_CALLS.has(c) && !SCENARIOS.some((s) => s.calls.includes(c)))).toEqual([]);
  });

  for (const cell of CELLS) {
    it(`${cell.scenario.label}: node killed at ${cell.failpoint}`, async () => {
      const name = `c${String(n++)}`;
      const p = await cell.scenario.prepare(w.api, name);
      await w.node?.stop();
      const doomed = await w.startNode(`${cell.failpoint}=kill`);
      await w.nodeReady();
      const res = await cell.scenario.submit(w.api, p, name);
      expect(res.status, res.text).toBe(202);
      const opId = (res.body as { operation: Operation }).operation.id;
      await doomed.exited;
      expect((await doomed.exited).signal, doomed.out).toBe('SIGKILL');
      expect(w.reached()).toEqual([cell.failpoint]);
      await w.startNode();
      const op = await w.finished(opId);
      expect(op.state, `${cell.failpoint}: ${JSON.stringify(op.error)}`).toBe('succeeded');
      await cell.scenario.verify(w.api, p, op);
      await w.nodeReady();
      await w.withStore(async (db) => {
        await expectStoreConsistent(db, [{ name, operationId: opId }]);
        await w.checkWorld(db);
      });
    }, 180_000);
  }

  it('a node frozen by SIGSTOP: it goes unreachable, the create waits with the reason shown and finishes once the node thaws', async () => {
    const node = w.node;
    if (!node?.child.pid) throw new Error('no node');
    const pid = node.child.pid;
    process.kill(pid, 'SIGSTOP');
    try {
      const res = await w.api.request('POST', '/v1/volumes?wait=false', { body: { name: 'frozen', sizeBytes: SIZE, backend: 'nd' } });
      expect(res.status, res.text).toBe(202);
      const opId = (res.body as { operation: Operation }).operation.id;
      // Shipped timings: unreachable after nodeUnreachableAfterMs (10 s), the call cut at nodeCallTimeoutMs.
      await pollUntil('node sn1 unreachable', async () => ((await w.api.ok<{ state: string }>('GET', '/v1/nodes/sn1', 200)).state === 'unreachable' ? true : undefined), 60_000);
      const waiting = await pollUntil('the create to wait for the node', async () => {
        const o = await w.api.ok<Operation>('GET', `/v1/operations/${opId}`, 200);
        expect(o.state === 'queued' || o.state === 'running', JSON.stringify(o)).toBe(true);
        return o.waitingReason !== null ? o : undefined;
      }, 90_000);
      expect(waiting.waitingReason).toMatch(/sn1/);
      process.kill(pid, 'SIGCONT');
      const op = await w.finished(opId);
      expect(op.state, JSON.stringify(op.error)).toBe('succeeded');
      await w.nodeReady();
      await w.withStore(async (db) => {
        await expectStoreConsistent(db, [{ name: 'frozen', operationId: opId }]);
        await w.checkWorld(db);
      });
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  }, 240_000);

  it('kill -9 of stowage serve while the node holds a createVolume that already took effect: resumes after its lease, no duplicate', async () => {
    const failpoint = 'driver.createVolume:after';
    await w.node?.stop();
    const hung = await w.startNode(`${failpoint}=hang`);
    await w.nodeReady();
    const res = await w.api.request('POST', '/v1/volumes?wait=false', { body: { name: 'serve-killed', sizeBytes: SIZE, backend: 'nd' } });
    expect(res.status, res.text).toBe(202);
    const opId = (res.body as { operation: Operation }).operation.id;
    await pollUntil('the node to hold the call', () => Promise.resolve(w.reached().includes(failpoint) ? true : undefined), 60_000);
    expect((await w.serve?.kill9())?.signal).toBe('SIGKILL');
    await hung.kill9();
    await w.startServe();
    await w.startNode();
    const op = await w.finished(opId);
    expect(op.state, JSON.stringify(op.error)).toBe('succeeded');
    expect(op.attempts).toBeGreaterThanOrEqual(2);
    await w.nodeReady();
    await w.withStore(async (db) => {
      await expectStoreConsistent(db, [{ name: 'serve-killed', operationId: opId }]);
      await w.checkWorld(db);
    });
  }, 240_000);
});
