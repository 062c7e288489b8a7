/**
 * The server at size (`npm run bench:scale`, needs `npm run build`): the real built server on its
 * embedded defaults over a store holding BENCH_VOLUMES volumes (default 100,000), BENCH_OPERATIONS
 * finished operations (default 1,000,000) and BENCH_EVENTS events (default 1,000,000), written
 * straight into its SQLite file between a first start (which makes the schema and the admin token)
 * and a second one. It prints the server's RSS after start and after the lists, and for each list
 * (GET /v1/volumes, /v1/operations, /v1/events, 100 per page) the p50 and p99 of BENCH_PAGES
 * pages walked by their cursors from the first, beside the same page queries run directly on the
 * same file with better-sqlite3 in the same run (the baseline). Targets: RSS < 200 MB, each page
 * < 10 ms p50. Rows are fresh (finished an hour ago), so retention keeps them all. Prints figures;
 * asserts nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Sqlite from 'better-sqlite3';
import { children, inserter, pct, rssMiB, startServe, type StartedServe } from './serve-kit.js';

const VOLUMES = Number(process.env.BENCH_VOLUMES ?? 100_000);
const OPERATIONS = Number(process.env.BENCH_OPERATIONS ?? 1_000_000);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const PAGES = Number(process.env.BENCH_PAGES ?? 200);
const PAGE = 100;
const TARGET_RSS_MB = 200;
const TARGET_PAGE_MS = 10;

const root = mkdtempSync(join(tmpdir(), 'stowage-bench-scale-'));
process.on('exit', () => { rmSync(root, { recursive: true, force: true }); });

/** Writes the rows straight into the stopped server's store, in one transaction per 10,000. */
function seed(file: string): void {
  const db = new Sqlite(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  const tenant = (db.prepare("SELECT id FROM tenants ORDER BY created_at LIMIT 1").get() as { id: string }).id;
  const backend = (db.prepare("SELECT id FROM backends WHERE name = 'local'").get() as { id: string }).id;
  const [volume, operation, event] = ['volumes', 'operations', 'events'].map((t) => inserter(db, t)) as [ReturnType<typeof inserter>, ReturnType<typeof inserter>, ReturnType<typeof inserter>];
  const base = Date.now() - 3_600_000;
  const at = (i: number): string => new Date(base + i).toISOString();
  const batches = (n: number, row: (i: number) => void): void => {
    for (let start = 0; start < n; start += 10_000) db.transaction(() => { for (let i = start; i < Math.min(n, start + 10_000); i++) row(i); })();
  };
  const t0 = performance.now();
  batches(VOLUMES, (i) => {
    volume({
      id: `volume-s${String(i).padStart(7, '0')}`, tenant_id: tenant, name: `vol-${String(i).padStart(7, '0')}`, backend_id: backend, state: 'available',
      size_bytes: 1024 * 1024, format: 'raw', driver_handle: null, placement: null, created_at: at(i), updated_at: at(i), multiattach: 0,
    });
  });
  batches(OPERATIONS, (i) => {
    const v = `volume-s${String(i % Math.max(1, VOLUMES)).padStart(7, '0')}`;
    operation({
      id: `operation-s${String(i).padStart(8, '0')}`, tenant_id: tenant, kind: 'volume.create', target_type: 'volume', target_id: v, state: 'succeeded',
      step: null, steps_done: JSON.stringify([{ name: 'provision', at: at(i) }]), attempts: 1, input: '{"name":"v","sizeBytes":1048576}', result: '{}', actor: 'bench',
      progress: 1, lease_epoch: 1, created_at: at(i), updated_at: at(i), finished_at: at(i),
    });
  });
  batches(EVENTS, (i) => {
    event({
      id: `event-s${String(i).padStart(8, '0')}`, tenant_id: tenant, at: at(i), actor: 'bench', resource_type: 'volume',
      resource_id: `volume-s${String(i % Math.max(1, VOLUMES)).padStart(7, '0')}`, resource_name: 'v', action: 'create', to_state: 'available',
      message: 'volume v created', details: '{}', operation_id: null,
    });
  });
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  console.log(`  seeded ${String(VOLUMES)} volumes, ${String(OPERATIONS)} operations, ${String(EVENTS)} events in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function get(s: StartedServe, path: string): Promise<{ nextCursor: string | null }> {
  return new Promise((resolve, reject) => {
    const r = request(new URL(path, s.url), { agent, headers: { authorization: `Bearer ${s.token}` } }, (m) => {
      let data = '';
      m.setEncoding('utf8').on('data', (d: string) => { data += d; }).on('end', () => {
        if (m.statusCode !== 200) { reject(new Error(`${path}: HTTP ${String(m.statusCode)} ${data.slice(0, 200)}`)); return; }
        resolve(JSON.parse(data) as { nextCursor: string | null });
      });
    });
    r.on('error', reject);
    r.end();
  });
}

/** Walks PAGES pages of `path` by cursor; each page's latency in ms. */
async function walk(s: StartedServe, path: string): Promise<number[]> {
  const lat: number[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < PAGES; i++) {
    const t = performance.now();
    const page: { nextCursor: string | null } = await get(s, `${path}?limit=${String(PAGE)}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    lat.push(performance.now() - t);
    cursor = page.nextCursor;
    if (!cursor) break;
  }
  return lat;
}

/** The same pages as the server's queries, straight on the file (keyset, 101 rows, by cursor). */
function rawWalks(file: string): Record<string, number[]> {
  const db = new Sqlite(file, { readonly: true });
  const tenant = (db.prepare("SELECT id FROM tenants ORDER BY created_at LIMIT 1").get() as { id: string }).id;
  const timed = <R>(n: number, page: (last: R | undefined) => R[]): number[] => {
    const lat: number[] = [];
    let last: R | undefined;
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      const rows = page(last);
      lat.push(performance.now() - t);
      last = rows[PAGE - 1];
      if (!last) break;
    }
    return lat;
  };
  type V = { name: string; id: string };
  type O = { created_at: string; id: string };
  type E = { seq: number };
  const vFirst = db.prepare("SELECT * FROM volumes WHERE tenant_id = ? AND state <> 'deleted' ORDER BY name, id LIMIT 101");
  const vNext = db.prepare("SELECT * FROM volumes WHERE tenant_id = ? AND state <> 'deleted' AND (name > ? OR (name = ? AND id > ?)) ORDER BY name, id LIMIT 101");
  const oFirst = db.prepare('SELECT * FROM operations WHERE tenant_id = ? ORDER BY created_at DESC, id DESC LIMIT 101');
  const oNext = db.prepare('SELECT * FROM operations WHERE tenant_id = ? AND (created_at < ? OR (created_at = ? AND id < ?)) ORDER BY created_at DESC, id DESC LIMIT 101');
  const eFirst = db.prepare('SELECT * FROM events WHERE tenant_id = ? ORDER BY seq DESC LIMIT 101');
  const eNext = db.prepare('SELECT * FROM events WHERE tenant_id = ? AND seq < ? ORDER BY seq DESC LIMIT 101');
  const out = {
    volumes: timed<V>(PAGES, (l) => (l ? vNext.all(tenant, l.name, l.name, l.id) : vFirst.all(tenant)) as V[]),
    operations: timed<O>(PAGES, (l) => (l ? oNext.all(tenant, l.created_at, l.created_at, l.id) : oFirst.all(tenant)) as O[]),
    events: timed<E>(PAGES, (l) => (l ? eNext.all(tenant, l.seq) : eFirst.all(tenant)) as E[]),
  };
  db.close();
  return out;
}

async function main(): Promise<void> {
  console.log(`bench:scale — ${String(VOLUMES)} volumes, ${String(OPERATIONS)} finished operations, ${String(EVENTS)} events, SQLite (embedded default), ${String(PAGES)} pages of ${String(PAGE)} per list`);
  const dataDir = join(root, 'serve');
  await startServe(dataDir);
  await new Promise((r) => { children[0]?.once('exit', r); children[0]?.kill('SIGTERM'); });
  children.length = 0;
  const file = join(dataDir, 'stowage.db');
  seed(file);
  rawWalks(file); // warm, as the server's walks are
  const raw = rawWalks(file);
  const t0 = performance.now();
  const s = await startServe(dataDir);
  const mb = (pid: number): string => `${(rssMiB(pid) * 1.048576).toFixed(0)} MB`;
  console.log(`  server started in ${((performance.now() - t0) / 1000).toFixed(1)} s; RSS ${mb(s.pid)}`);
  for (const [name, path] of [['volumes', '/v1/volumes'], ['operations', '/v1/operations'], ['events', '/v1/events']] as const) {
    await walk(s, path); // warm: the first walk reads the pages into the page cache
    const lat = await walk(s, path);
    const base = raw[name] ?? [];
    console.log(`  ${name.padEnd(10)} page p50 ${pct(lat, 50).toFixed(2).padStart(6)} ms   p99 ${pct(lat, 99).toFixed(2).padStart(6)} ms   (${String(lat.length)} pages)   raw query p50 ${pct(base, 50).toFixed(2)} ms   x${(pct(lat, 50) / pct(base, 50)).toFixed(1)}; target < ${String(TARGET_PAGE_MS)} ms`);
  }
  console.log(`  server RSS after the lists ${mb(s.pid)}; target < ${String(TARGET_RSS_MB)} MB`);
  agent.destroy();
}

await main();
process.exit(0);
