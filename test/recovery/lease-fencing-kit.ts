import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import type { StowageEvent } from '../../src/core/schemas/event-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { freshPostgresUrl } from '../helpers/pg.js';
import { clientFor, makeTempDir, pollUntil, removeTempDir, spawnServer } from '../helpers/server.js';

const MiB = 1024 ** 2;
/** Big enough that qemu-img is still copying when the test freezes its replica. */
const SOURCE_BYTES = 384 * MiB;

/** How the stale replica's step would go on after its SIGCONT (the three cases of issue 9, point 4). */
export type StaleCase = 'step-fails' | 'step-retries' | 'child-frozen-too';

/** Every case. */
export const STALE_CASES: readonly StaleCase[] = ['step-fails', 'step-retries', 'child-frozen-too'];

interface Submitted { volume: Volume; operation: Operation }
interface Page<T> { items: T[]; nextCursor: string | null }

const dirs: string[] = [];

/** Removes the temp dirs of the test that just ran (servers are killed by killAllSpawned). */
export function cleanupLeaseRuns(): void {
  for (const d of dirs.splice(0)) removeTempDir(d);
}

/** A child process of `parentPid` running `qemu-img convert` (pid), if any. */
function convertChildOf(parentPid: number): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (!cmd[0]?.endsWith('qemu-img') || cmd[1] !== 'convert') continue;
      const ppid = /^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${name}/status`, 'utf8'))?.[1];
      if (Number(ppid) === parentPid) return Number(name);
    } catch {
      // the process ended meanwhile
    }
  }
  return undefined;
}

function alive(pid: number): boolean {
  try {
    const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${String(pid)}/status`, 'utf8'))?.[1];
    return state !== undefined && state !== 'Z';
  } catch {
    return false;
  }
}

/** Every file of the backend directories: name, size, inode, mtime (what any driver call would change). */
function filesOf(...ds: string[]): string[] {
  return ds.flatMap((d) => (existsSync(d) ? readdirSync(d).sort().map((n) => {
    const st = statSync(join(d, n));
    return `${d}/${n} size=${String(st.size)} ino=${String(st.ino)} mtime=${String(st.mtimeMs)}`;
  }) : []));
}

function sha256(file: string, bytes: number): string {
  const h = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(4 * MiB);
    for (let off = 0; off < bytes;) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, bytes - off), off);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      off += n;
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

function writeAt(file: string, data: Buffer, offset: number): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, data, 0, data.length, offset);
  } finally {
    closeSync(fd);
  }
}

/**
 * Two `serve` replicas on one store. Replica A runs a host-copy clone; while qemu-img copies, A is
 * frozen (SIGSTOP) past its lease; B starts, takes the operation over and finishes it; then A is
 * thawed (SIGCONT). A must then change nothing: no step, input, finish or compensation in the
 * store, no driver call (the backend directories stay byte-for-byte as B left them), and with its
 * child frozen too, the stale qemu-img's writes must not reach the finished volume.
 */
export async function runStaleReplicaCase(dialect: 'sqlite' | 'postgres', c: StaleCase): Promise<void> {
  const root = makeTempDir('stowage-lease-');
  dirs.push(root);
  const dataDir = join(root, 'data');
  mkdirSync(dataDir, { mode: 0o700 });
  const localDir = join(dataDir, 'volumes');
  // Beside the data dir: a backend may not live inside it.
  const spareDir = join(root, 'spare');
  // On SQLite both replicas share the data dir's stowage.db: two processes on one file.
  const base = {
    dataDir,
    ...(dialect === 'postgres' ? { databaseUrl: await freshPostgresUrl('lease') } : {}),
    // A short lease so the takeover comes quickly; the fencing is the same at the default, it just takes longer.
    env: { STOWAGE_OPERATION_LEASE_MS: '1500' },
  };

  // Setup: a source volume full of random data, and a second backend a retry could move the clone to.
  const setup = await spawnServer(base);
  const api0 = clientFor(setup);
  const src = (await api0.ok<Submitted>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'source', sizeBytes: SOURCE_BYTES, backend: 'local' } })).volume;
  await api0.ok('POST', '/v1/backends', 201, { body: { name: 'spare', driver: `dir://${spareDir}` } });
  const srcFile = join(localDir, `${src.id}.raw`);
  for (let off = 0; off < SOURCE_BYTES; off += 8 * MiB) writeAt(srcFile, randomBytes(8 * MiB), off);
  const srcHash = sha256(srcFile, SOURCE_BYTES);
  expect(await setup.stop()).toEqual({ code: 0, signal: null });

  // Replica A starts the host copy (pinned when its failure must be final, free to move when it may retry elsewhere).
  const a = await spawnServer(base);
  const apiA = clientFor(a);
  const body = { name: 'clone', fromVolume: 'source', offload: false, ...(c === 'step-retries' ? {} : { backend: 'local' }) };
  const submitted = await apiA.ok<Submitted>('POST', '/v1/volumes?wait=false', 202, { body });
  const child = await pollUntil('replica A to run qemu-img convert', () => Promise.resolve(convertChildOf(a.pid)), 60_000, 5);
  process.kill(a.pid, 'SIGSTOP');
  // qemu-img runs in its own process group (CommandRunner spawns it detached).
  if (c === 'child-frozen-too') process.kill(-child, 'SIGSTOP');
  // Cases a and b: the stale step fails once A wakes (its copy died while A was frozen).
  else process.kill(-child, 'SIGKILL');

  try {
    // Replica B takes the operation over once A's lease ran out, and finishes it.
    const b = await spawnServer(base);
    const apiB = clientFor(b);
    const op = await pollUntil('replica B to finish the clone', async () => {
      const o = await apiB.ok<Operation>('GET', `/v1/operations/${submitted.operation.id}`, 200);
      return o.state === 'succeeded' || o.state === 'failed' ? o : undefined;
    }, 180_000);
    expect(op.state, JSON.stringify(op.error)).toBe('succeeded');
    expect(op.attempts).toBe(2);
    const clone = await apiB.ok<Volume>('GET', `/v1/volumes/${submitted.volume.id}`, 200);
    expect(clone.state).toBe('available');
    const cloneDir = clone.backendName === 'spare' ? spareDir : localDir;
    const cloneFile = join(cloneDir, `${clone.id}.raw`);
    expect(sha256(cloneFile, SOURCE_BYTES)).toBe(srcHash);

    // The volume is in use: a guest writes its last MiB (where the frozen copy has not got to yet).
    const marker = randomBytes(MiB);
    writeAt(cloneFile, marker, clone.sizeBytes - MiB);

    const before = await snapshot(apiB, submitted.operation.id, clone.id, localDir, spareDir);

    if (c === 'child-frozen-too') {
      // The worst order: the stale child runs (to the end) before its parent can notice anything.
      process.kill(-child, 'SIGCONT');
      await pollUntil('the stale qemu-img to finish', () => Promise.resolve(alive(child) ? undefined : true), 180_000, 20);
    }
    process.kill(a.pid, 'SIGCONT');
    await pollUntil('replica A to give the operation up', () => Promise.resolve(/gave the operation up after losing its lease/.test(a.output()) ? true : undefined), 60_000);
    expect(a.hasExited(), a.output()).toBe(false);
    expect(convertChildOf(a.pid)).toBeUndefined();

    // Nothing A could still have done is visible: store rows, events, files, data.
    expect(await snapshot(apiB, submitted.operation.id, clone.id, localDir, spareDir)).toEqual(before);
    expect(sha256(cloneFile, SOURCE_BYTES - MiB)).toBe(sha256(srcFile, SOURCE_BYTES - MiB));
    const tail = Buffer.alloc(MiB);
    const fd = openSync(cloneFile, 'r');
    try {
      readSync(fd, tail, 0, MiB, clone.sizeBytes - MiB);
    } finally {
      closeSync(fd);
    }
    expect(tail.equals(marker)).toBe(true);
    // No leftover of either attempt's private copy.
    expect(readdirSync(cloneDir).sort()).toEqual(cloneDir === localDir ? [`${clone.id}.raw`, `${src.id}.raw`].sort() : [`${clone.id}.raw`]);
    expect(await b.stop()).toEqual({ code: 0, signal: null });
    expect(await a.stop()).toEqual({ code: 0, signal: null });
  } finally {
    if (!a.hasExited()) process.kill(a.pid, 'SIGCONT');
    if (alive(child)) process.kill(-child, 'SIGKILL');
  }
}

/** Everything a stale worker could change, read through the surviving replica and the file system. */
async function snapshot(api: ReturnType<typeof clientFor>, operationId: string, volumeId: string, ...ds: string[]): Promise<unknown> {
  const op = await api.ok<Operation>('GET', `/v1/operations/${operationId}`, 200);
  const vols = (await api.ok<Page<Volume>>('GET', '/v1/volumes?limit=1000', 200)).items;
  const evs = (await api.ok<Page<StowageEvent>>('GET', `/v1/events?resource=${volumeId}&after=0&limit=1000`, 200)).items;
  const backends = (await api.ok<Page<unknown>>('GET', '/v1/backends', 200)).items;
  return { op, vols, evs, backends, files: filesOf(...ds) };
}

