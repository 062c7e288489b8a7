/**
 * The API's own paths under load (`npm run bench:api`, needs `npm run build`): the real built server
 * (`node dist/main.js serve`) on its embedded defaults — SQLite in its data dir, the `local` dir
 * backend, shipped timers and log level — with BENCH_BACKENDS dir backends registered in all (default
 * 1000), driven over keep-alive HTTP by BENCH_CLIENTS concurrent clients (default 50) for
 * BENCH_SECONDS per phase (default 20):
 *   creates  POST /v1/volumes?wait=true of 1 MiB volumes (answered once the volume is available)
 *   lists    GET /v1/volumes?limit=100
 *   deletes  DELETE /v1/volumes/{id}?wait=true of every volume the creates made
 *   mixed    create, show, list, delete in a loop
 * The baseline, measured in the same run: a plain loop on one thread doing what a create must make
 * durable — the same three SQLite transactions (submit, provision step, finish) on a store with the
 * server's schema and pragmas, and a crash-safe sparse file (create, fsync, link, dir fsync) — with
 * no HTTP, no engine and no placement. BENCH_DATABASE_URL=postgres://… (or `lab`: a private server
 * started for the run, as the tests start one) runs the server phases on
 * PostgreSQL instead (the baseline stays SQLite), BENCH_REPLICAS=2 with it starts two `serve`
 * replicas sharing that store, the clients split between them. BENCH_PROF=DIR writes the servers'
 * CPU profiles there. Prints figures; asserts nothing.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Sqlite from 'better-sqlite3';
import { createSparseFile, publishNoClobber, syncDir } from '../src/drivers/dir/file-ops.js';
import { children, inserter, pct, rssMiB, serverOverrides, startServe } from './serve-kit.js';
import { openStore } from '../src/store/store.js';
import { startPostgres } from '../test/lab/postgres.js';

const BACKENDS = Number(process.env.BENCH_BACKENDS ?? 1000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 50);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? '';
const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 1);
const SIZE = 1024 * 1024;
const TARGET_RATE = 1000;
const TARGET_P99_MS = 50;

const root = mkdtempSync(join(tmpdir(), 'stowage-bench-api-'));
process.on('exit', () => { rmSync(root, { recursive: true, force: true }); });

// ---- the baseline: the durable work of a create, in a plain loop ----

async function rawLoop(): Promise<{ rate: number; p50: number; p99: number }> {
  const dir = join(root, 'raw');
  mkdirSync(join(dir, 'files'), { recursive: true, mode: 0o700 });
  const file = join(dir, 'raw.db');
  await (await openStore(`sqlite://${file}`)).close();
  const db = new Sqlite(file);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 10000');
  db.pragma('foreign_keys = ON');
  db.pragma('synchronous = NORMAL');
  const tenant = (db.prepare('SELECT id FROM tenants LIMIT 1').get() as { id: string } | undefined)?.id ?? 'tenant-default';
  if (!db.prepare('SELECT 1 FROM tenants WHERE id = ?').get(tenant)) inserter(db, 'tenants')({ id: tenant, name: 'default', description: '', created_at: new Date().toISOString(), updated_at: new Date().toISOString() });
  const backendId = 'backend-raw';
  inserter(db, 'backends')({
    id: backendId, tenant_id: tenant, name: 'raw', driver_uri: `dir://${dir}`, kind: 'block', role: 'primary', state: 'enabled', admin_state: 'enabled', cost: 1, tags: '[]', zone: '',
    capabilities_reported: '[]', capabilities_overrides: '{}', options: '{}', total_bytes: 1e12, free_bytes: 1e12, used_bytes: 0, overcommit_ratio: 1, reserved_percent: 0, created_at: '', updated_at: '',
  });
  const [volume, operation, claim, event] = ['volumes', 'operations', 'claims', 'events'].map((t) => inserter(db, t)) as [ReturnType<typeof inserter>, ReturnType<typeof inserter>, ReturnType<typeof inserter>, ReturnType<typeof inserter>];
  const stepDone = db.prepare("UPDATE operations SET step = NULL, steps_done = ?, updated_at = ? WHERE id = ?");
  const handle = db.prepare('UPDATE volumes SET driver_handle = ?, updated_at = ? WHERE id = ?');
  const finishOp = db.prepare("UPDATE operations SET state = 'succeeded', result = '{}', finished_at = ?, updated_at = ? WHERE id = ?");
  const activate = db.prepare("UPDATE volumes SET state = 'available', updated_at = ? WHERE id = ?");
  const commitClaim = db.prepare("UPDATE claims SET state = 'committed' WHERE resource_id = ?");
  const lat: number[] = [];
  const until = performance.now() + SECONDS * 1000;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() < until) {
    const s = performance.now();
    const at = new Date().toISOString();
    const id = `volume-raw${String(n)}`;
    const opId = `operation-raw${String(n)}`;
    db.transaction(() => {
      volume({ id, tenant_id: tenant, name: `raw-${String(n)}`, backend_id: backendId, state: 'creating', size_bytes: SIZE, format: 'raw', placement: '{}', created_at: at, updated_at: at, multiattach: 0 });
      operation({ id: opId, tenant_id: tenant, kind: 'volume.create', target_type: 'volume', target_id: id, state: 'running', step: 'provision', steps_done: '[]', attempts: 1, input: '{}', actor: 'bench', lease_epoch: 1, created_at: at, updated_at: at });
      claim({ id: `claim-raw${String(n)}`, backend_id: backendId, resource_type: 'volume', resource_id: id, operation_id: opId, bytes: SIZE, state: 'held', expires_at: at, created_at: at });
      event({ id: `event-raw${String(n)}`, tenant_id: tenant, at, actor: 'bench', resource_type: 'volume', resource_id: id, resource_name: `raw-${String(n)}`, action: 'create', to_state: 'creating', message: 'placed', details: '{}', operation_id: opId });
    })();
    const tmp = join(dir, 'files', `.tmp-${id}`);
    await createSparseFile(tmp, SIZE);
    await publishNoClobber(tmp, join(dir, 'files', `${id}.raw`));
    await syncDir(join(dir, 'files'));
    db.transaction(() => {
      stepDone.run('[{"name":"provision"}]', at, opId);
      handle.run(JSON.stringify({ id, format: 'raw' }), at, id);
    })();
    db.transaction(() => {
      finishOp.run(at, at, opId);
      activate.run(at, id);
      commitClaim.run(id);
    })();
    lat.push(performance.now() - s);
    n += 1;
  }
  const rate = n / ((performance.now() - t0) / 1000);
  db.close();
  return { rate, p50: pct(lat, 50), p99: pct(lat, 99) };
}

// ---- the server ----

interface Answer { readonly status: number; readonly body: unknown }

const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS + 8 });

function call(base: URL, token: string, method: string, path: string, body?: unknown): Promise<Answer> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((res, rej) => {
    const r = request({
      host: base.hostname, port: base.port, method, path, agent,
      headers: { authorization: `Bearer ${token}`, ...(data !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) },
    }, (m) => {
      const chunks: Buffer[] = [];
      m.on('data', (c: Buffer) => chunks.push(c));
      m.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try { parsed = text === '' ? undefined : JSON.parse(text); } catch { parsed = text; }
        res({ status: m.statusCode ?? 0, body: parsed });
      });
      m.on('error', rej);
    });
    r.on('error', rej);
    r.end(data);
  });
}

interface PhaseResult { readonly name: string; readonly count: number; readonly rate: number; readonly p50: number; readonly p99: number; readonly errors: number; readonly firstError: string }

/** Runs `step` in CLIENTS loops until `seconds` pass (or `step` says it is out of work). */
async function phase(name: string, seconds: number, step: (client: number, i: number) => Promise<Answer | null>, ok: (a: Answer) => boolean): Promise<PhaseResult> {
  const lat: number[] = [];
  let errors = 0;
  let firstError = '';
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    for (let i = 0; performance.now() < until; i++) {
      const s = performance.now();
      const a = await step(c, i);
      if (a === null) return;
      lat.push(performance.now() - s);
      if (!ok(a)) {
        errors += 1;
        if (firstError === '') firstError = `${String(a.status)} ${JSON.stringify(a.body).slice(0, 200)}`;
      }
    }
  }));
  const elapsed = (performance.now() - t0) / 1000;
  return { name, count: lat.length, rate: lat.length / elapsed, p50: pct(lat, 50), p99: pct(lat, 99), errors, firstError };
}

function printPhase(r: PhaseResult, note = ''): void {
  console.log(`  ${r.name.padEnd(9)} ${r.rate.toFixed(0).padStart(6)}/s   p50 ${r.p50.toFixed(1).padStart(7)} ms   p99 ${r.p99.toFixed(1).padStart(7)} ms   ${String(r.count).padStart(6)} done   ${String(r.errors)} errors${r.firstError ? ` (first: ${r.firstError})` : ''}${note}`);
}

let stopPostgres: (() => Promise<void>) | undefined;

async function main(): Promise<void> {
  console.log(`bench:api — ${String(CLIENTS)} clients, ${String(BACKENDS)} backends, ${String(SECONDS)} s per phase, 1 MiB volumes, store ${DATABASE_URL ? 'PostgreSQL' : 'SQLite (embedded default)'}, ${String(REPLICAS)} replica(s)`);
  const raw = await rawLoop();
  const overrides = Object.entries(serverOverrides());
  if (overrides.length > 0) console.log(`  server settings not the defaults: ${overrides.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  console.log(`  baseline: plain loop, same 3 SQLite transactions + crash-safe sparse file: ${raw.rate.toFixed(0)}/s (p50 ${raw.p50.toFixed(2)} ms, p99 ${raw.p99.toFixed(2)} ms)`);

  // `lab`: a private PostgreSQL for this run, as the tests start one (stopped when the bench ends).
  const pg = DATABASE_URL === 'lab' ? await startPostgres() : null;
  if (pg) stopPostgres = () => pg.stop();
  const databaseUrl = pg ? await pg.createDatabase('bench') : DATABASE_URL || undefined;
  const servers: { url: URL; token: string; pid: number }[] = [];
  for (let i = 0; i < REPLICAS; i++) servers.push(await startServe(join(root, `serve${String(i)}`), { databaseUrl, profileDir: process.env.BENCH_PROF, cliConfig: join(root, 'cli.json') }));
  const first = servers[0];
  if (!first) throw new Error('no server');
  const token = first.token;
  const target = (c: number) => (servers[c % servers.length] ?? first).url;

  // Register backends (the local one exists already): 8 at a time, as a provisioning script would.
  const tReg = performance.now();
  let next = 1;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < BACKENDS) {
      const i = next++;
      const dir = join(root, 'backends', `b${String(i)}`);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const a = await call(first.url, token, 'POST', '/v1/backends', { name: `b${String(i)}`, driver: `dir://${dir}` });
      if (a.status !== 201 && a.status !== 200) throw new Error(`backend create: ${String(a.status)} ${JSON.stringify(a.body)}`);
    }
  }));
  console.log(`  registered ${String(BACKENDS - 1)} backends in ${((performance.now() - tReg) / 1000).toFixed(1)} s; server RSS ${rssMiB(first.pid).toFixed(0)} MiB`);

  const created: string[] = [];
  const creates = await phase('creates', SECONDS, async (c, i) => {
    const a = await call(target(c), token, 'POST', '/v1/volumes?wait=true', { name: `c${String(c)}-${String(i)}`, sizeBytes: SIZE });
    const id = (a.body as { volume?: { id?: string } } | undefined)?.volume?.id;
    if (a.status === 200 && id) created.push(id);
    return a;
  }, (a) => a.status === 200);
  printPhase(creates, `   x${(creates.rate / raw.rate).toFixed(2)} of the baseline; target ≥ ${String(TARGET_RATE)}/s, p99 ≤ ${String(TARGET_P99_MS)} ms`);

  const lists = await phase('lists', Math.max(2, SECONDS / 2), (c) => call(target(c), token, 'GET', '/v1/volumes?limit=100'), (a) => a.status === 200);
  printPhase(lists, `   (${String(created.length)} volumes)`);

  let d = 0;
  const deletes = await phase('deletes', SECONDS * 3, async (c) => {
    const id = created[d++];
    return id === undefined ? null : call(target(c), token, 'DELETE', `/v1/volumes/${id}?wait=true`);
  }, (a) => a.status === 200);
  printPhase(deletes);

  const mixed = await phase('mixed', SECONDS, async (c, i) => {
    const name = `m${String(c)}-${String(i)}`;
    const a = await call(target(c), token, 'POST', '/v1/volumes?wait=true', { name, sizeBytes: SIZE });
    if (a.status !== 200) return a;
    const b = await call(target(c), token, 'GET', `/v1/volumes/${name}`);
    if (b.status !== 200) return b;
    const l = await call(target(c), token, 'GET', '/v1/volumes?limit=20');
    if (l.status !== 200) return l;
    return call(target(c), token, 'DELETE', `/v1/volumes/${name}?wait=true`);
  }, (a) => a.status === 200);
  printPhase(mixed, '   (one = create + show + list + delete)');
  for (const s of servers) console.log(`  server pid ${String(s.pid)} RSS ${rssMiB(s.pid).toFixed(0)} MiB`);
  agent.destroy();
  if (process.env.BENCH_PROF) {
    // A profile is written when the process exits on its own: SIGTERM drains and exits.
    await Promise.all(children.map((c) => new Promise((r) => { c.once('exit', r); c.kill('SIGTERM'); })));
  }
}

await main();
await stopPostgres?.();
process.exit(0);
