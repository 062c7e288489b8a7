import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { expect } from 'vitest';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import type { Database } from '../../src/store/schema.js';
import { ApiClient } from '../helpers/server.js';
import { makeTenantUser } from '../helpers/tenants.js';
import type { Prepared, Scenario, Tier } from './matrix-kit.js';

const MiB = 1024 ** 2;
const SIZE = 1 * MiB;
const GROWN = 3 * MiB;

/** The two dir backends of a dir-tier run: `local` (healthy) and `flaky` (its disk goes away for compensation cells). */
export interface DirWorld {
  readonly localDir: string;
  readonly flakyDir: string;
}

interface VolumeView { id: string; name: string; state: string; stateReason: string | null; sizeBytes: number; backendName: string }
interface SnapshotView { id: string; name: string; state: string; stateReason: string | null }

const backendOf = (failing: boolean): string => (failing ? 'flaky' : 'local');
const dirOf = (w: DirWorld, failing: boolean): string => (failing ? w.flakyDir : w.localDir);

/** A pattern that differs per resource, so a copy of the wrong data cannot pass. */
function pattern(seed: string, byte: number): Buffer {
  const b = Buffer.alloc(SIZE, byte);
  b.write(seed, 0, 'utf8');
  return b;
}

interface TenantView { name: string; deletingAt: string | null; usage: Record<string, number> }

async function volume(api: ApiClient, name: string, backend: string): Promise<string> {
  const r = await api.ok<{ volume: VolumeView }>('POST', '/v1/volumes?wait=true', 200, { body: { name, sizeBytes: SIZE, backend } });
  expect(r.volume.state).toBe('available');
  return r.volume.id;
}

async function snapshot(api: ApiClient, volumeId: string, name: string): Promise<string> {
  const r = await api.ok<{ snapshot: SnapshotView }>('POST', '/v1/snapshots?wait=true', 200, { body: { volume: volumeId, name } });
  expect(r.snapshot.state).toBe('available');
  return r.snapshot.id;
}

const getVolume = (api: ApiClient, id: string): Promise<VolumeView> => api.ok<VolumeView>('GET', `/v1/volumes/${id}`, 200);
const getSnapshot = (api: ApiClient, id: string): Promise<SnapshotView> => api.ok<SnapshotView>('GET', `/v1/snapshots/${id}`, 200);
const req = (p: Prepared, key: string): string => {
  const v = p[key];
  if (v === undefined) throw new Error(`prepared ${key} missing`);
  return v;
};

/** The failed operation says why, and compensation left the resource in its documented end state. */
function expectFailed(op: Operation): void {
  expect(op.state, JSON.stringify(op)).toBe('failed');
  expect(op.error?.code).toBe('BACKEND_UNAVAILABLE');
}

function expectSucceeded(op: Operation, steps: readonly string[]): void {
  expect(op.state, JSON.stringify(op.error)).toBe('succeeded');
  expect(op.stepsDone.map((s) => s.name)).toEqual(steps);
}

/** Scenarios for every kind that runs on dir backends alone; several may share a kind. */
function dirScenarios(stepsOf: (kind: string) => readonly string[]): Scenario<DirWorld>[] {
  return [
    {
      kind: 'volume.create', label: 'volume.create', compensates: true,
      prepare: () => Promise.resolve({}),
      submit: (api, _w, _p, name, failing) => api.request('POST', '/v1/volumes?wait=false', { body: { name, sizeBytes: SIZE, backend: backendOf(failing) } }),
      verify: async (api, _w, _p, op, failing) => {
        const v = await getVolume(api, op.targetId);
        if (failing) {
          expectFailed(op);
          expect(v.state).toBe('error');
          expect(v.stateReason).toMatch(/^create failed: /);
          expect(v.stateReason).not.toMatch(/could not be removed/);
        } else {
          expectSucceeded(op, stepsOf(op.kind));
          expect(v).toMatchObject({ state: 'available', sizeBytes: SIZE, stateReason: null, backendName: 'local' });
        }
      },
    },
    {
      // A clone its class forbids offloading: provision runs `qemu-img convert` on the host.
      kind: 'volume.create', label: 'volume.create (clone, host copy)', compensates: false,
      prepare: async (api, w, name) => {
        const src = await volume(api, `${name}-src`, 'local');
        writeFileSync(join(w.localDir, `${src}.raw`), pattern(name, 0xa5));
        return { src };
      },
      submit: (api, _w, p, name) => api.request('POST', '/v1/volumes?wait=false', { body: { name, fromVolume: req(p, 'src'), class: 'host-copy', backend: 'local' } }),
      verify: async (api, w, p, op) => {
        expectSucceeded(op, stepsOf(op.kind));
        const v = await getVolume(api, op.targetId);
        expect(v).toMatchObject({ state: 'available', sizeBytes: SIZE, stateReason: null });
        expect(op.stepsDone.find((s) => s.name === 'provision')?.note).toMatch(/^host copy \(qemu-img convert\)/);
        expect(readFileSync(join(w.localDir, `${v.id}.raw`)).equals(readFileSync(join(w.localDir, `${req(p, 'src')}.raw`)))).toBe(true);
      },
    },
    {
      kind: 'volume.resize', label: 'volume.resize', compensates: true,
      prepare: async (api, _w, name, failing) => ({ vol: await volume(api, name, backendOf(failing)) }),
      submit: (api, _w, p) => api.request('POST', `/v1/volumes/${req(p, 'vol')}/resize?wait=false`, { body: { sizeBytes: GROWN } }),
      verify: async (api, _w, _p, op, failing) => {
        const v = await getVolume(api, op.targetId);
        if (failing) {
          expectFailed(op);
          expect(v).toMatchObject({ state: 'available', sizeBytes: SIZE });
          expect(v.stateReason).toMatch(/^resize to .* failed: /);
        } else {
          expectSucceeded(op, stepsOf(op.kind));
          expect(v).toMatchObject({ state: 'available', sizeBytes: GROWN, stateReason: null });
        }
      },
    },
    {
      kind: 'volume.delete', label: 'volume.delete', compensates: true,
      prepare: async (api, _w, name, failing) => ({ vol: await volume(api, name, backendOf(failing)) }),
      submit: (api, _w, p) => api.request('DELETE', `/v1/volumes/${req(p, 'vol')}?wait=false`),
      verify: async (api, _w, _p, op, failing) => {
        const v = await getVolume(api, op.targetId);
        if (failing) {
          expectFailed(op);
          expect(v.state).toBe('error');
          expect(v.stateReason).toMatch(/^delete failed: /);
        } else {
          expectSucceeded(op, stepsOf(op.kind));
          expect(v.state).toBe('deleted');
        }
      },
    },
    {
      kind: 'snapshot.create', label: 'snapshot.create', compensates: true,
      prepare: async (api, w, name, failing) => {
        const vol = await volume(api, `${name}-vol`, backendOf(failing));
        writeFileSync(join(dirOf(w, failing), `${vol}.raw`), pattern(name, 0x5a));
        return { vol };
      },
      submit: (api, _w, p, name) => api.request('POST', '/v1/snapshots?wait=false', { body: { volume: req(p, 'vol'), name } }),
      verify: async (api, w, p, op, failing) => {
        const s = await getSnapshot(api, op.targetId);
        if (failing) {
          expectFailed(op);
          expect(s.state).toBe('error');
          expect(s.stateReason).toMatch(/^snapshot failed: /);
        } else {
          expectSucceeded(op, stepsOf(op.kind));
          expect(s).toMatchObject({ state: 'available', stateReason: null });
          expect(readFileSync(join(w.localDir, `${s.id}.raw`)).equals(readFileSync(join(w.localDir, `${req(p, 'vol')}.raw`)))).toBe(true);
        }
      },
    },
    {
      kind: 'snapshot.delete', label: 'snapshot.delete', compensates: true,
      prepare: async (api, _w, name, failing) => {
        const vol = await volume(api, `${name}-vol`, backendOf(failing));
        return { vol, snap: await snapshot(api, vol, name) };
      },
      submit: (api, _w, p) => api.request('DELETE', `/v1/snapshots/${req(p, 'snap')}?wait=false`),
      verify: async (api, _w, _p, op, failing) => {
        const s = await getSnapshot(api, op.targetId);
        if (failing) {
          expectFailed(op);
          expect(s.state).toBe('error');
          expect(s.stateReason).toMatch(/^delete failed: /);
        } else {
          expectSucceeded(op, stepsOf(op.kind));
          expect(s.state).toBe('deleted');
        }
      },
    },
    {
      // The `reverting` state: the volume's data is replaced by the snapshot's.
      kind: 'volume.revert', label: 'volume.revert', compensates: true,
      prepare: async (api, w, name, failing) => {
        const dir = dirOf(w, failing);
        const vol = await volume(api, name, backendOf(failing));
        writeFileSync(join(dir, `${vol}.raw`), pattern(name, 0x11));
        const snap = await snapshot(api, vol, `${name}-snap`);
        writeFileSync(join(dir, `${vol}.raw`), pattern(name, 0x22)); // written after the snapshot: the revert must undo it
        return { vol, snap };
      },
      submit: (api, _w, p) => api.request('POST', `/v1/volumes/${req(p, 'vol')}/revert?wait=false`, { body: { snapshot: req(p, 'snap') } }),
      verify: async (api, w, p, op, failing) => {
        const v = await getVolume(api, op.targetId);
        if (failing) {
          expectFailed(op);
          expect(v.state).toBe('error');
          expect(v.stateReason).toMatch(/^revert failed: /);
        } else {
          expectSucceeded(op, stepsOf(op.kind));
          expect(v).toMatchObject({ state: 'available', sizeBytes: SIZE, stateReason: null });
          expect(readFileSync(join(w.localDir, `${v.id}.raw`)).equals(readFileSync(join(w.localDir, `${req(p, 'snap')}.raw`)))).toBe(true);
          expect(readFileSync(join(w.localDir, `${v.id}.raw`))[SIZE - 1]).toBe(0x11);
        }
      },
    },
    {
      // A tenant with a member, a volume and a snapshot of it (made by that member), deleted with all of it.
      kind: 'tenant.delete', label: 'tenant.delete', compensates: true,
      prepare: async (api, _w, name, failing) => {
        const tenant = `${name}-t`;
        const member = await makeTenantUser(api, { tenant, user: `${name}-u`, role: 'member' });
        const asMember = new ApiClient(api.baseUrl, member.token);
        const vol = await volume(asMember, `${name}-vol`, backendOf(failing));
        return { tenant, user: `${name}-u`, token: member.token, vol, snap: await snapshot(asMember, vol, `${name}-snap`) };
      },
      submit: (api, _w, p) => api.request('DELETE', `/v1/tenants/${req(p, 'tenant')}?cascade=true&wait=false`),
      verify: async (api, w, p, op, failing) => {
        // Its token was revoked with the submit, whatever happened after.
        expect((await api.request('GET', '/v1/volumes', { token: req(p, 'token') })).status).toBe(401);
        if (failing) {
          expectFailed(op);
          const t = await api.ok<TenantView>('GET', `/v1/tenants/${req(p, 'tenant')}`, 200);
          expect(t.deletingAt).not.toBeNull();
          // The snapshot's backend was gone: it is in error (checked not transitional below), the volume untouched.
          expect(t.usage).toMatchObject({ users: 1, volumes: 1, snapshots: 1 });
        } else {
          expectSucceeded(op, stepsOf(op.kind));
          expect((await api.request('GET', `/v1/tenants/${req(p, 'tenant')}`)).status).toBe(404);
          expect((await api.request('GET', `/v1/users/${req(p, 'user')}`)).status).toBe(404);
          for (const id of [req(p, 'vol'), req(p, 'snap')]) expect(existsSync(join(w.localDir, `${id}.raw`)), `${id} left on the backend`).toBe(false);
        }
      },
    },
  ];
}

/** Every kind that needs nothing but dir backends. */
export const DIR_KINDS: readonly string[] = ['volume.create', 'volume.resize', 'volume.delete', 'snapshot.create', 'snapshot.delete', 'volume.revert', 'tenant.delete'];

/**
 * The dir tier: the server's default `local` dir backend, a `flaky` one whose directory is moved away
 * for the compensation cells (the store still thinks it fine: no probe runs in between), and a class
 * that forbids offloaded clones so a clone is a qemu-img host copy.
 */
export const dirTier: Tier<DirWorld> = {
  kinds: DIR_KINDS,
  env: {},
  scenarios: dirScenarios,
  setUp: async (api, dataDir, scratchDir) => {
    const w: DirWorld = { localDir: join(dataDir, 'volumes'), flakyDir: join(scratchDir, 'flaky') };
    mkdirSync(w.flakyDir, { mode: 0o700 });
    await api.ok('POST', '/v1/backends', 201, { body: { name: 'flaky', driver: `dir://${w.flakyDir}` } });
    await api.ok('POST', '/v1/classes', 201, { body: { name: 'host-copy', offload: false } });
    return w;
  },
  breakBackend: (w) => {
    const parked = `${w.flakyDir}.away`;
    renameSync(w.flakyDir, parked);
    return () => { renameSync(parked, w.flakyDir); };
  },
  checkWorld: (db, w) => checkDirs(db, w),
};

/**
 * Each backend directory holds exactly the store's live images: every available volume and snapshot
 * has its file (volumes at their recorded size), and no file is there the store does not know — no
 * temp file, nothing of a deleted resource (an image in `error` may keep its data).
 */
async function checkDirs(db: Kysely<Database>, w: DirWorld): Promise<void> {
  const backends = new Map<string, string>((await db.selectFrom('backends').select(['id', 'name']).execute()).map((b) => [b.id, b.name]));
  const vols = await db.selectFrom('volumes').select(['id', 'name', 'state', 'backend_id', 'size_bytes']).execute();
  const snaps = await db.selectFrom('snapshots').select(['id', 'name', 'state', 'backend_id']).execute();
  for (const [backend, dir] of [['local', w.localDir], ['flaky', w.flakyDir]] as const) {
    const on = (b: string | null): boolean => b !== null && backends.get(b) === backend;
    const known = new Set([...vols, ...snaps].filter((x) => on(x.backend_id) && x.state !== 'deleted').map((x) => `${x.id}.raw`));
    expect(readdirSync(dir).filter((f) => !known.has(f)), `stray files on ${backend}`).toEqual([]);
    for (const v of vols.filter((x) => on(x.backend_id) && x.state === 'available')) {
      const f = join(dir, `${v.id}.raw`);
      expect(existsSync(f), `${v.name} has no file`).toBe(true);
      expect(statSync(f).size, v.name).toBe(Number(v.size_bytes));
    }
    for (const s of snaps.filter((x) => on(x.backend_id) && x.state === 'available')) expect(existsSync(join(dir, `${s.id}.raw`)), `${s.name} has no file`).toBe(true);
  }
}
