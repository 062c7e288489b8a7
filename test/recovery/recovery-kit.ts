import { mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Operation, StowageEvent, Volume } from '../../src/core/models.js';
import { readJson } from '../../src/store/json.js';
import type { StepRecord } from '../../src/store/operation-repository.js';
import { openStore } from '../../src/store/store.js';
import { freshPostgresUrl } from '../helpers/pg.js';
import {
  clientFor, makeTempDir, pollUntil, reachedFailpoints, removeTempDir, spawnServer, type ApiClient, type SpawnedServer,
} from '../helpers/server.js';

const MiB = 1024 ** 2;

/** How the process dies at the failpoint: it SIGKILLs itself, or it pauses and the test kill -9s it. */
export type KillStyle = 'kill' | 'pause';

/** Which operation a case interrupts. */
export type CaseOperation = 'create' | 'resize' | 'delete' | 'create-failing' | 'delete-failing';

/** One crash point of the recovery matrix and what must hold at the crash and after the restart. */
export interface RecoveryCase {
  readonly failpoint: string;
  readonly operation: CaseOperation;
  /** Step names the journal must show as done at the moment of the crash. */
  readonly stepsDoneAtCrash: readonly string[];
}

/** The matrix: every step boundary the brief names, plus a crash during compensation. */
export const RECOVERY_CASES: readonly RecoveryCase[] = [
  { failpoint: 'volume.create/provision:before', operation: 'create', stepsDoneAtCrash: [] },
  { failpoint: 'volume.create/provision:after', operation: 'create', stepsDoneAtCrash: ['provision'] },
  { failpoint: 'volume.create/activate:before', operation: 'create', stepsDoneAtCrash: ['provision'] },
  { failpoint: 'volume.create/activate:after', operation: 'create', stepsDoneAtCrash: ['provision', 'activate'] },
  { failpoint: 'volume.resize/grow:before', operation: 'resize', stepsDoneAtCrash: [] },
  { failpoint: 'volume.resize/grow:after', operation: 'resize', stepsDoneAtCrash: ['grow'] },
  { failpoint: 'volume.delete/destroy:before', operation: 'delete', stepsDoneAtCrash: [] },
  { failpoint: 'volume.delete/destroy:after', operation: 'delete', stepsDoneAtCrash: ['destroy'] },
  // ':done' = the step's effect happened but its journal record did not: the step must be re-run safely.
  { failpoint: 'volume.create/provision:done', operation: 'create', stepsDoneAtCrash: [] },
  { failpoint: 'volume.resize/grow:done', operation: 'resize', stepsDoneAtCrash: [] },
  { failpoint: 'volume.delete/destroy:done', operation: 'delete', stepsDoneAtCrash: [] },
  { failpoint: 'volume.create/compensate:before', operation: 'create-failing', stepsDoneAtCrash: [] },
  { failpoint: 'volume.delete/compensate:before', operation: 'delete-failing', stepsDoneAtCrash: [] },
];

/** Both ways of dying. */
export const KILL_STYLES: readonly KillStyle[] = ['kill', 'pause'];

const TRANSITIONAL = new Set(['creating', 'resizing', 'deleting']);
const TARGET = 'victim';
const KEEPER = 'keeper';
const SIZE = 1 * MiB;
const GROWN = 3 * MiB;

/** The volume events we expect for the target, oldest first, as `action:from>to`. */
function expectedEvents(op: CaseOperation): string[] {
  const created = ['create:null>creating', 'created:creating>available'];
  switch (op) {
    case 'create': return created;
    case 'resize': return [...created, 'resize:available>resizing', 'resized:resizing>available'];
    case 'delete': return [...created, 'delete:available>deleting', 'deleted:deleting>deleted'];
    case 'create-failing': return ['create:null>creating', 'create-failed:creating>error'];
    case 'delete-failing': return [...created, 'delete:available>deleting', 'delete-failed:deleting>error'];
  }
}

interface Page<T> { items: T[]; nextCursor: string | null }
interface Submitted { volume: Volume; operation: Operation }

/** Where one case keeps its state: data dir (SQLite store, `local` backend), database, backend dirs. */
export interface Run {
  readonly dataDir: string;
  readonly databaseUrl: string | undefined;
  readonly localDir: string;
  readonly flakyDir: string;
}

/** Temp dirs of the current test, for afterEach. */
const current: { dirs: string[] } = { dirs: [] };

/** Removes the temp dirs of the test that just ran (servers are killed by killAllSpawned). */
export function cleanupRuns(): void {
  for (const d of current.dirs.splice(0)) removeTempDir(d);
}

/** A fresh data dir (removed by cleanupRuns) and, on PostgreSQL, a fresh database. */
export async function newRun(dialect: 'sqlite' | 'postgres'): Promise<Run> {
  const dataDir = makeTempDir('stowage-recovery-');
  // The flaky backend's directory is beside the data dir: no backend may keep files inside it.
  const flakyRoot = makeTempDir('stowage-recovery-flaky-');
  current.dirs.push(dataDir, flakyRoot);
  return {
    dataDir,
    databaseUrl: dialect === 'postgres' ? await freshPostgresUrl('recovery') : undefined,
    localDir: join(dataDir, 'volumes'),
    flakyDir: join(flakyRoot, 'flaky'),
  };
}

function start(run: Run, failpoints?: string): Promise<SpawnedServer> {
  return spawnServer({
    dataDir: run.dataDir,
    ...(run.databaseUrl !== undefined ? { databaseUrl: run.databaseUrl } : {}),
    ...(failpoints !== undefined ? { failpoints } : {}),
  });
}

/**
 * Runs one cell of the matrix against the real built server:
 * 1. a clean server creates the volumes the case needs (and a keeper that must survive), then stops;
 * 2. a server with the failpoint gets the operation and dies at the failpoint (kill -9);
 * 3. the journal shows the operation mid-flight exactly where expected;
 * 4. a clean server on the same data dir/database finishes it, and everything is checked.
 */
export async function runRecoveryCase(dialect: 'sqlite' | 'postgres', c: RecoveryCase, style: KillStyle): Promise<void> {
  const run = await newRun(dialect);

  // 1. Setup on a server without failpoints.
  const s1 = await start(run);
  const api1 = clientFor(s1);
  const keeper = (await api1.ok<Submitted>('POST', '/v1/volumes?wait=true', 200, { body: { name: KEEPER, sizeBytes: 2 * MiB } })).volume;
  const flaky = c.operation === 'create-failing' || c.operation === 'delete-failing';
  if (flaky) {
    mkdirSync(run.flakyDir);
    const b = await api1.ok<{ backend: { state: string } }>('POST', '/v1/backends', 201, { body: { name: 'flaky', driver: `dir://${run.flakyDir}` } });
    expect(b.backend.state).toBe('enabled');
  }
  let targetId: string | undefined;
  if (c.operation === 'resize' || c.operation === 'delete' || c.operation === 'delete-failing') {
    const backend = c.operation === 'delete-failing' ? { backend: 'flaky' } : {};
    targetId = (await api1.ok<Submitted>('POST', '/v1/volumes?wait=true', 200, { body: { name: TARGET, sizeBytes: SIZE, ...backend } })).volume.id;
  }
  expect(await s1.stop()).toEqual({ code: 0, signal: null });
  const parked = `${run.flakyDir}.away`;
  if (flaky) {
    // The disk goes away (its data kept aside); the store still believes the backend is fine (no probe ran since).
    renameSync(run.flakyDir, parked);
  }

  // 2. The crash.
  const s2 = await start(run, `${c.failpoint}=${style}`);
  const api2 = clientFor(s2);
  const submitted = submit(api2, c.operation, targetId);
  if (style === 'pause') {
    const r = await submitted;
    expect(r.status, r.text).toBe(202);
    await pollUntil(`failpoint ${c.failpoint}`, async () => (reachedFailpoints(run.dataDir).includes(c.failpoint) ? true : undefined));
    expect(s2.hasExited()).toBe(false);
    await s2.kill9();
  } else {
    // The process may die before it answers: the request's transaction committed before the worker ran.
    await submitted.catch(() => undefined);
  }
  const exit = await s2.exited;
  expect(exit.signal, s2.output()).toBe('SIGKILL');
  expect(reachedFailpoints(run.dataDir)).toEqual([c.failpoint]);

  // 3. The journal at the moment of the crash.
  const atCrash = await readJournal(run, targetId);
  targetId = atCrash.volumeId;
  expect(atCrash.operationState).toBe('running');
  expect(atCrash.stepsDone).toEqual(c.stepsDoneAtCrash);
  if (c.failpoint.endsWith('activate:after')) expect(atCrash.volumeState).toBe('available');
  else expect(TRANSITIONAL.has(atCrash.volumeState), atCrash.volumeState).toBe(true);
  if (flaky) {
    expect(atCrash.failureCode).toBe('BACKEND_UNAVAILABLE');
    renameSync(parked, run.flakyDir); // the operator brings the disk back
  }

  // 4. Restart without failpoints: the operation resumes after the dead worker's lease expires.
  const s3 = await start(run);
  const api3 = clientFor(s3);
  const op = await pollUntil('the interrupted operation to finish', async () => {
    const o = await api3.ok<Operation>('GET', `/v1/operations/${atCrash.operationId}`, 200);
    return o.state === 'succeeded' || o.state === 'failed' ? o : undefined;
  });
  expect(op.attempts).toBeGreaterThanOrEqual(2);
  const vol = await api3.ok<Volume>('GET', `/v1/volumes/${targetId}`, 200);
  switch (c.operation) {
    case 'create':
      expect(op.state, JSON.stringify(op.error)).toBe('succeeded');
      expect(vol).toMatchObject({ name: TARGET, state: 'available', sizeBytes: SIZE, stateReason: null });
      break;
    case 'resize':
      expect(op.state, JSON.stringify(op.error)).toBe('succeeded');
      expect(vol).toMatchObject({ state: 'available', sizeBytes: GROWN, stateReason: null });
      break;
    case 'delete':
      expect(op.state, JSON.stringify(op.error)).toBe('succeeded');
      expect(vol.state).toBe('deleted');
      break;
    case 'create-failing':
      expect(op.state).toBe('failed');
      expect(op.error?.code).toBe('BACKEND_UNAVAILABLE');
      expect(vol.state).toBe('error');
      expect(vol.stateReason).toMatch(/^create failed: /);
      expect(vol.stateReason).not.toMatch(/could not be removed/);
      break;
    case 'delete-failing':
      expect(op.state).toBe('failed');
      expect(op.error?.code).toBe('BACKEND_UNAVAILABLE');
      expect(vol.state).toBe('error');
      expect(vol.stateReason).toMatch(/^delete failed: /);
      break;
  }
  expect(op.stepsDone.map((s) => s.name)).toEqual(expectedSteps(c.operation));

  // Nothing is left in a transitional state; the keeper is untouched.
  const all = await api3.ok<Page<Volume>>('GET', '/v1/volumes?limit=1000', 200);
  for (const v of all.items) expect(TRANSITIONAL.has(v.state), `${v.name} is ${v.state}`).toBe(false);
  expect(all.items.find((v) => v.id === keeper.id)).toMatchObject({ name: KEEPER, state: 'available', sizeBytes: 2 * MiB });

  // Backend directories hold exactly the live volumes' files, at their recorded sizes; no temp files.
  const live = all.items.filter((v) => v.state === 'available');
  assertDirMatches(run.localDir, live.filter((v) => v.backendName === 'local'));
  // A failed create leaves nothing; a failed delete keeps the data of the volume now in error.
  if (c.operation === 'create-failing') assertDirMatches(run.flakyDir, []);
  if (c.operation === 'delete-failing') assertDirMatches(run.flakyDir, [vol]);

  // The events tell the story once: no transition was recorded twice by the resumed run.
  const events = await api3.ok<Page<StowageEvent>>('GET', `/v1/events?resource=${targetId}&after=0&limit=1000`, 200);
  expect(events.items.map((e) => `${e.action}:${e.fromState ?? 'null'}>${e.toState ?? 'null'}`)).toEqual(expectedEvents(c.operation));
  expect(events.items.every((e) => e.actor === 'admin')).toBe(true);

  // The server still works after recovery: the name is reusable or the volume deletable.
  const after = await api3.request('DELETE', `/v1/volumes/${targetId}?wait=true`);
  expect(after.status, after.text).toBe(c.operation === 'delete' ? 409 : 200);
  if (flaky) assertDirMatches(run.flakyDir, []);
  assertDirMatches(run.localDir, [keeper]);
  expect(await s3.stop()).toEqual({ code: 0, signal: null });
}

function expectedSteps(op: CaseOperation): string[] {
  switch (op) {
    case 'create': return ['provision', 'activate'];
    case 'resize': return ['grow', 'activate'];
    case 'delete': return ['destroy', 'finalize'];
    case 'create-failing': return [];
    case 'delete-failing': return [];
  }
}

function submit(api: ApiClient, op: CaseOperation, targetId: string | undefined): Promise<{ status: number; text: string }> {
  switch (op) {
    case 'create': return api.request('POST', '/v1/volumes?wait=false', { body: { name: TARGET, sizeBytes: SIZE } });
    case 'create-failing': return api.request('POST', '/v1/volumes?wait=false', { body: { name: TARGET, sizeBytes: SIZE, backend: 'flaky' } });
    case 'resize': return api.request('POST', `/v1/volumes/${targetId ?? ''}/resize?wait=false`, { body: { sizeBytes: GROWN } });
    case 'delete':
    case 'delete-failing':
      return api.request('DELETE', `/v1/volumes/${targetId ?? ''}?wait=false`);
  }
}

/** Reads the target's volume row and latest operation straight from the store while no server runs. */
async function readJournal(run: Run, targetId: string | undefined): Promise<{
  volumeId: string; volumeState: string; operationId: string; operationState: string; stepsDone: string[]; failureCode: string | undefined;
}> {
  const store = await openStore(run.databaseUrl ?? `sqlite://${join(run.dataDir, 'stowage.db')}`);
  try {
    const vq = store.db.selectFrom('volumes').selectAll();
    const vol = await (targetId ? vq.where('id', '=', targetId) : vq.where('name', '=', TARGET).where('state', '<>', 'deleted')).executeTakeFirstOrThrow();
    const op = await store.db.selectFrom('operations').selectAll().where('target_id', '=', vol.id)
      .orderBy('created_at', 'desc').orderBy('id', 'desc').executeTakeFirstOrThrow();
    const input = readJson<Record<string, unknown>>(op.input, {});
    const failure = input.__failure as { code?: string } | undefined;
    return {
      volumeId: vol.id, volumeState: vol.state, operationId: op.id, operationState: op.state,
      stepsDone: readJson<StepRecord[]>(op.steps_done, []).map((s) => s.name), failureCode: failure?.code,
    };
  } finally {
    await store.close();
  }
}

/** The directory holds exactly `<id>.raw` for each volume, each file exactly its recorded size. */
export function assertDirMatches(dir: string, volumes: readonly Volume[]): void {
  const files = readdirSync(dir).sort();
  expect(files).toEqual(volumes.map((v) => `${v.id}.raw`).sort());
  for (const v of volumes) expect(statSync(join(dir, `${v.id}.raw`)).size, v.name).toBe(v.sizeBytes);
}
