/**
 * Placement benchmark: `npm run bench:placement [-- --fleet FILE ...] [--verify N]`.
 *
 * A fleet file is JSON `{ backends: [{name, zone, tags, cost, totalBytes, freeBytes, provisionedBytes,
 * reservedPercent, overcommitRatio}], requests: [{sizeBytes, zone, tags}] }`. For each request the
 * placement picks, among enabled backends in the zone carrying every requested tag with room for the
 * size after reserve and overcommit (the one `usableBytes` function), the one with the most usable
 * capacity (policy `spread`), and consumes the size from it. Without `--fleet` it generates fleets
 * of 1,000 and 10,000 backends.
 *
 * Per fleet it prints one line per path (`rate` is per second of this process's CPU time, i.e. on one
 * core even on a busy machine; `wallRate` is per second of wall time):
 *   decision  — the indexed decision path (PlacementIndex) alone, in memory;
 *   sqlite    — the same, each decision's claim recorded in its own SQLite transaction;
 *   plain     — the generic `decide` over every backend (reference; a sample of requests).
 * Before timing, the fast path is checked against `decide` on the first `--verify` requests.
 */
import { idOf } from '../src/core/ids.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { PlacementIndex } from '../src/placement/placement-index.js';
import { decide, type BackendView, type PlacementRequest } from '../src/placement/placement.js';
import { ClaimRepository } from '../src/store/claim-repository.js';
import { nowIso } from '../src/store/json.js';
import { openStore } from '../src/store/store.js';

interface FleetBackend {
  name: string; zone: string; tags: string[]; cost: number; totalBytes: number; freeBytes: number;
  provisionedBytes: number; reservedPercent: number; overcommitRatio: number;
}
interface FleetRequest { sizeBytes: number; zone: string; tags: string[] }
interface Fleet { label: string; backends: FleetBackend[]; requests: FleetRequest[] }

const GiB = 1024 ** 3;

function parseArgs(argv: readonly string[]): { fleets: string[]; verify: number; plainSample: number } {
  const fleets: string[] = [];
  let verify = 2000;
  let plainSample = 500;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = argv[i + 1];
    if (a === '--fleet' && next !== undefined) { fleets.push(next); i++; }
    else if (a === '--verify' && next !== undefined) { verify = Number(next); i++; }
    else if (a === '--plain-sample' && next !== undefined) { plainSample = Number(next); i++; }
    else if (a === '--') continue;
    else throw new Error(`unknown argument ${String(a)}; usage: bench/placement.ts [--fleet FILE]... [--verify N] [--plain-sample N]`);
  }
  return { fleets, verify, plainSample };
}

/** A small deterministic PRNG (mulberry32) so generated fleets are the same every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)] as T;
}

/** A fleet shaped like /work/shared/bench/fleet-*.json. */
function generateFleet(n: number, requests: number, seed: number): Fleet {
  const r = rng(seed);
  const backends: FleetBackend[] = [];
  for (let i = 0; i < n; i++) {
    const totalBytes = pick(r, [2000, 5000, 10000, 20000]) * GiB;
    const freeBytes = Math.floor(totalBytes * (0.1 + 0.8 * r()));
    backends.push({
      name: `be-${String(i).padStart(5, '0')}`, zone: pick(r, ['az0', 'az1']), tags: [pick(r, ['ssd', 'hdd'])], cost: pick(r, [1, 2, 3, 5, 8]),
      totalBytes, freeBytes, provisionedBytes: totalBytes - freeBytes, reservedPercent: 5, overcommitRatio: 1,
    });
  }
  const reqs: FleetRequest[] = [];
  for (let i = 0; i < requests; i++) reqs.push({ sizeBytes: pick(r, [1, 10, 50, 100]) * GiB, zone: pick(r, ['az0', 'az1']), tags: [pick(r, ['ssd', 'hdd'])] });
  return { label: `generated-${String(n)}`, backends, requests: reqs };
}

function loadFleet(file: string): Fleet {
  const raw = JSON.parse(readFileSync(file, 'utf8')) as { backends: FleetBackend[]; requests: FleetRequest[] };
  return { label: basename(file), backends: raw.backends, requests: raw.requests };
}

function views(f: Fleet): BackendView[] {
  return f.backends.map((b, i) => ({
    id: `bk-bench${String(i).padStart(15, '0')}`, name: b.name, tenants: null, state: 'enabled', role: 'primary', kind: 'block',
    zone: b.zone, tags: b.tags, capabilities: [], cost: b.cost, totalBytes: b.totalBytes, freeBytes: b.freeBytes,
    overcommitRatio: b.overcommitRatio, reservedPercent: b.reservedPercent, provisionedBytes: b.provisionedBytes, claimedBytes: 0,
  }));
}

function requests(f: Fleet): PlacementRequest[] {
  return f.requests.map((q) => ({
    sizeBytes: q.sizeBytes, kind: 'block', requiredTags: q.tags, forbiddenTags: [], requiredCapabilities: [], zone: q.zone,
    policy: 'spread', className: null, exclude: [],
  }));
}

/** One timed pass: wall time, and CPU time of this process (the machine may be shared; CPU time is the one-core figure). */
interface Run { decisions: number; placed: number; totalNs: number; cpuUs: number; samples: Float64Array }

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function line(f: Fleet, path: string, run: Run): string {
  const sorted = Float64Array.from(run.samples).sort();
  const pct = (p: number): string => ((sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0) / 1000).toFixed(2);
  const rate = run.decisions / (Math.max(1, run.cpuUs) / 1e6);
  const wallRate = run.decisions / (run.totalNs / 1e9);
  const rssMb = process.memoryUsage().rss / 1024 / 1024;
  return `backends=${String(f.backends.length)} decisions=${String(run.decisions)} placed=${String(run.placed)} rate=${Math.round(rate).toString()}/s p50=${pct(0.5)}us p99=${pct(0.99)}us rss=${rssMb.toFixed(1)}MB path=${path} fleet=${f.label} wallRate=${Math.round(wallRate).toString()}/s`;
}

/** The indexed decision path: decide, then consume the size from the winner. */
function runIndexed(vs: readonly BackendView[], reqs: readonly PlacementRequest[]): Run {
  const index = new PlacementIndex(vs);
  const samples = new Float64Array(reqs.length);
  let placed = 0;
  const c0 = cpuUs();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < reqs.length; i++) {
    const s = process.hrtime.bigint();
    const r = reqs[i] as PlacementRequest;
    const w = index.decide(r);
    if (w) { index.consume(w.id, r.sizeBytes); placed++; }
    samples[i] = Number(process.hrtime.bigint() - s);
  }
  return { decisions: reqs.length, placed, totalNs: Number(process.hrtime.bigint() - t0), cpuUs: cpuUs() - c0, samples };
}

/** The plain `decide` over every backend (the reference), on the first `n` requests. */
function runPlain(vs: readonly BackendView[], reqs: readonly PlacementRequest[], n: number): Run {
  const current = vs.map((v) => ({ ...v }));
  const byId = new Map(current.map((v) => [v.id, v]));
  const sample = reqs.slice(0, n);
  const samples = new Float64Array(sample.length);
  let placed = 0;
  const c0 = cpuUs();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < sample.length; i++) {
    const s = process.hrtime.bigint();
    const r = sample[i] as PlacementRequest;
    const w = decide(current, r).winner;
    if (w) { const v = byId.get(w.id); if (v) v.claimedBytes += r.sizeBytes; placed++; }
    samples[i] = Number(process.hrtime.bigint() - s);
  }
  return { decisions: sample.length, placed, totalNs: Number(process.hrtime.bigint() - t0), cpuUs: cpuUs() - c0, samples };
}

/** Checks the fast path against `decide` on the first `n` requests; returns the mismatch count. */
function verify(vs: readonly BackendView[], reqs: readonly PlacementRequest[], n: number): number {
  const index = new PlacementIndex(vs);
  let mismatches = 0;
  for (const r of reqs.slice(0, n)) {
    const slow = decide(index.views(), r).winner;
    const fast = index.decide(r);
    if ((slow?.id ?? null) !== (fast?.id ?? null)) mismatches++;
    if (fast) index.consume(fast.id, r.sizeBytes);
  }
  return mismatches;
}

/** The decision path with each decision's claim recorded in its own SQLite transaction. */
async function runSqlite(vs: readonly BackendView[], reqs: readonly PlacementRequest[]): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), `stowage-bench-${String(process.pid)}-`));
  const store = await openStore(`sqlite://${join(dir, 'bench.db')}`);
  try {
    const claims = new ClaimRepository();
    const index = new PlacementIndex(vs);
    const samples = new Float64Array(reqs.length);
    let placed = 0;
    const c0 = cpuUs();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < reqs.length; i++) {
      const s = process.hrtime.bigint();
      const r = reqs[i] as PlacementRequest;
      const w = index.decide(r);
      if (w) {
        await store.transaction(async (trx) => {
          await claims.hold(trx, { backendId: idOf('backend', w.id), resourceType: 'volume', resourceId: `vol-bench${String(i)}`, operationId: null, bytes: r.sizeBytes });
        });
        index.consume(w.id, r.sizeBytes);
        placed++;
      }
      samples[i] = Number(process.hrtime.bigint() - s);
    }
    const run = { decisions: reqs.length, placed, totalNs: Number(process.hrtime.bigint() - t0), cpuUs: cpuUs() - c0, samples };
    const n = await store.db.selectFrom('claims').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    if (Number(n.n) !== placed) throw new Error(`sqlite path recorded ${String(n.n)} claims for ${String(placed)} placements`);
    return run;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const fleets = args.fleets.length > 0 ? args.fleets.map(loadFleet) : [generateFleet(1000, 20000, 1), generateFleet(10000, 20000, 2)];
  console.log(`# placement bench ${nowIso()} node ${process.version}; policy spread; one core (single thread)`);
  for (const f of fleets) {
    const vs = views(f);
    const reqs = requests(f);
    const mismatches = verify(vs, reqs, args.verify);
    console.log(`# ${f.label}: fast path checked against decide on ${String(Math.min(args.verify, reqs.length))} requests: ${String(mismatches)} mismatches`);
    if (mismatches > 0) process.exitCode = 1;
    runIndexed(vs, reqs.slice(0, 2000)); // warm-up
    console.log(line(f, 'decision', runIndexed(vs, reqs)));
    console.log(line(f, 'sqlite', await runSqlite(vs, reqs)));
    console.log(line(f, 'plain-decide', runPlain(vs, reqs, args.plainSample)));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
