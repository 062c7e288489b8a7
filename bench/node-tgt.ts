/**
 * Create + export + grant through a storage node (`npm run bench:node-tgt`; root, builds the lab).
 * A fleet with one storage node (its own tgtd in its own mount namespace) running a real
 * `stowage node run` enrolled against a real `stowage serve` (TLS), a `tgt://` backend over a
 * `dir://` backing placed on that node, and one hypervisor host. For N volumes, measured as a user
 * waits: `POST /v1/volumes?wait=true` then `POST /v1/volumes/:v/grants?wait=true` (pinned HTTPS,
 * a new connection per request, as the CLI makes them) versus the raw path: the same backing-file
 * creation and tgtadm commands (target new, logicalunit new, bind address, account new + bind)
 * run directly inside the node's namespaces (one `nsenter` per command), the two paths taking turns
 * volume by volume so a change of load on the machine hits both alike. Prints figures and the
 * split of the API path (HTTP + wait, operation engine + node RPC, driver time on the node, from
 * the operations' timestamps and the node's debug log), asserts nothing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { pinnedFetch } from '../src/system/pinned-fetch.js';
import { pollUntil } from '../test/helpers/server.js';
import { startFleet, type Fleet } from '../test/lab/fleet.js';
import type { LabStorageNode } from '../test/lab/storage-node.js';

const N = 20;
const SIZE = 16 * 1024 * 1024;

interface Op { id: string; createdAt: string; finishedAt: string | null; state: string }

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

function row(label: string, ms: readonly number[]): void {
  console.log(`  ${label.padEnd(54)} median ${median(ms).toFixed(1).padStart(7)} ms   mean ${(ms.reduce((a, b) => a + b, 0) / Math.max(1, ms.length)).toFixed(1).padStart(7)} ms`);
}

/** A JSON client over the API with the CLI config's pinned certificate and admin token. */
function apiOf(fleet: Fleet): <T>(method: string, path: string, body?: unknown) => Promise<T> {
  const cfg = JSON.parse(readFileSync(fleet.server.cliConfigPath, 'utf8')) as { url: string; token: string; apiFingerprint: string; apiCertPem?: string };
  const f = pinnedFetch({ fingerprint: cfg.apiFingerprint, certPem: cfg.apiCertPem });
  return async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await f(`${cfg.url}${path}`, {
      method, headers: { authorization: `Bearer ${cfg.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path}: ${String(res.status)} ${text}`);
    return JSON.parse(text) as T;
  };
}

/** GETs over one kept-alive pinned connection (pinnedFetch with keepAlive, as one CLI process makes its requests). */
function keptAliveGet(fleet: Fleet): (path: string) => Promise<void> {
  const cfg = JSON.parse(readFileSync(fleet.server.cliConfigPath, 'utf8')) as { url: string; token: string; apiFingerprint: string; apiCertPem?: string };
  const f = pinnedFetch({ fingerprint: cfg.apiFingerprint, certPem: cfg.apiCertPem }, { keepAlive: true });
  return async (path: string): Promise<void> => {
    const res = await f(`${cfg.url}${path}`, { headers: { authorization: `Bearer ${cfg.token}` } });
    await res.text();
    if (res.status >= 300) throw new Error(`GET ${path}: ${String(res.status)}`);
  };
}

/** Background calls (probes, the export watch) that are not part of a user's operation. */
const BACKGROUND = new Set(['probe', 'drift', 'reconcile', 'listVolumes', 'listGrants']);

/** The node's driver calls (method, end time, durationMs) from its debug log. */
function driverCalls(logFile: string): { method: string; endMs: number; ms: number }[] {
  const out: { method: string; endMs: number; ms: number }[] = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes('"driver call done"')) continue;
    const l = JSON.parse(line) as { time?: number; durationMs?: number; method?: string };
    if (l.method === undefined || BACKGROUND.has(l.method)) continue;
    out.push({ method: l.method, endMs: l.time ?? 0, ms: l.durationMs ?? 0 });
  }
  return out;
}

/** The calls that ended inside the operation's lifetime (operations here run one at a time). */
function callsOf(calls: readonly { method: string; endMs: number; ms: number }[], o: Op): { calls: number; ms: number; methods: string[] } {
  const from = Date.parse(o.createdAt);
  const to = o.finishedAt === null ? from : Date.parse(o.finishedAt);
  const mine = calls.filter((c) => c.endMs >= from && c.endMs <= to + 1);
  return { calls: mine.length, ms: mine.reduce((a, c) => a + c.ms, 0), methods: mine.map((c) => c.method) };
}

/** One raw create + export + grant (volume `i`): its total and the nsenter overhead measured next to it. */
async function rawOnce(fleet: Fleet, node: LabStorageNode, i: number): Promise<{ total: number; nsenter: number }> {
  const dir = join(node.dataDir, 'raw');
  // Counting down from 10000: the driver allocates one above the highest tid it saw, so it never meets these.
  const t = String(10_000 - i);
  const iqn = `iqn.2024-01.lab.stowage.bench:raw-${t}`;
  const user = `bench${t}`;
  const secret = randomBytes(12).toString('hex');
  const file = join(dir, `raw-${t}.raw`);
  const host = fleet.lab.hosts[0];
  if (!host) throw new Error('no host');
  const t0 = performance.now();
  await fleet.lab.runInNode(node, ['truncate', '-s', String(SIZE), file]);
  await fleet.lab.nodeTgtadm(node, ['--op', 'new', '--mode', 'target', '--tid', t, '-T', iqn]);
  await fleet.lab.nodeTgtadm(node, ['--op', 'new', '--mode', 'logicalunit', '--tid', t, '--lun', '1', '-b', file]);
  await fleet.lab.nodeTgtadm(node, ['--op', 'bind', '--mode', 'target', '--tid', t, '-I', host.address]);
  await fleet.lab.nodeTgtadm(node, ['--op', 'new', '--mode', 'account', '--user', user, '--password', secret], { secrets: [secret] });
  await fleet.lab.nodeTgtadm(node, ['--op', 'bind', '--mode', 'account', '--tid', t, '--user', user]);
  const total = performance.now() - t0;
  const t1 = performance.now();
  await fleet.lab.runInNode(node, ['true']);
  const t2 = performance.now();
  await fleet.lab.runner.run('true', []);
  return { total, nsenter: (t2 - t1) - (performance.now() - t2) };
}

async function main(): Promise<void> {
  const fleet = await startFleet({ storageNodes: 1, hosts: 1, nodeLogLevel: 'debug' });
  try {
    const agent = await fleet.startNodeAgent('sn1');
    const node = agent.node;
    const host = fleet.lab.hosts[0];
    if (!host) throw new Error('no host');
    const api = apiOf(fleet);
    await api('POST', '/v1/hosts', { name: host.name, initiatorName: host.initiatorName, addresses: [host.address] });
    const backing = `dir://${join(node.dataDir, 'vols')}`;
    await fleet.lab.runInNode(node, ['mkdir', '-p', join(node.dataDir, 'vols')]);
    const driver = `tgt://${node.portal}?backing=${encodeURIComponent(backing)}&control=${String(node.tgtdControlPort)}`;
    await api('POST', '/v1/backends', { name: 'sn1-tgt', node: node.name, driver });
    await pollUntil('backend probed', async () => {
      const b = await api<{ state: string; capabilities: string[]; stateReason?: string | null }>('GET', '/v1/backends/sn1-tgt');
      if (b.state === 'offline' || b.state === 'error') throw new Error(`backend is ${b.state}: ${b.stateReason ?? ''}`);
      return b.capabilities.length > 0 ? b : undefined;
    }, 60_000);

    await fleet.lab.runInNode(node, ['mkdir', '-p', join(node.dataDir, 'raw')]);
    // API and raw runs alternate, so a change of load on the machine (2 shared cores) hits both alike.
    const raw = { total: [] as number[], nsenter: [] as number[] };
    const create: number[] = [];
    const grant: number[] = [];
    const both: number[] = [];
    const ops: { create: Op; grant: Op }[] = [];
    const before: number[] = [];
    const after: number[] = [];
    for (let i = 0; i < N; i++) {
      const w0 = Date.now();
      const t0 = performance.now();
      const c = await api<{ volume: { state: string }; operation: Op }>('POST', '/v1/volumes?wait=true', { name: `bv${String(i)}`, sizeBytes: SIZE, backend: 'sn1-tgt' });
      const t1 = performance.now();
      const w1 = Date.now();
      const g = await api<{ grant: { state: string }; operation: Op }>('POST', `/v1/volumes/bv${String(i)}/grants?wait=true`, { host: host.name, mode: 'rw' });
      const t2 = performance.now();
      const w2 = Date.now();
      if (c.volume.state !== 'available' || g.grant.state !== 'active') throw new Error(`volume ${c.volume.state}, grant ${g.grant.state}`);
      create.push(t1 - t0);
      grant.push(t2 - t1);
      both.push(t2 - t0);
      ops.push({ create: c.operation, grant: g.operation });
      // Wall-clock edges (same machine, same clock as the operations' timestamps): before the operation row, after it finished.
      before.push((Date.parse(c.operation.createdAt) - w0) + (Date.parse(g.operation.createdAt) - w1));
      after.push((w1 - Date.parse(c.operation.finishedAt ?? c.operation.createdAt)) + (w2 - Date.parse(g.operation.finishedAt ?? g.operation.createdAt)));
      const r = await rawOnce(fleet, node, i);
      raw.total.push(r.total);
      raw.nsenter.push(r.nsenter);
    }

    // What one request costs by itself: the same GET with a fresh pinned connection each, and on one kept alive.
    const probeNew: number[] = [];
    const probeKept: number[] = [];
    const probeHealth: number[] = [];
    const kept = keptAliveGet(fleet);
    for (let i = 0; i < N; i++) {
      const a = performance.now();
      await api('GET', '/v1/backends/sn1-tgt');
      const b = performance.now();
      await kept('/v1/backends/sn1-tgt');
      const c = performance.now();
      await kept('/healthz');
      probeNew.push(b - a);
      probeKept.push(c - b);
      probeHealth.push(performance.now() - c);
    }

    // The split, from the operations' own timestamps and the node's log of each driver call.
    const log = driverCalls(agent.logFile);
    const calls = { get: (id: string) => { const o = ops.flatMap((x) => [x.create, x.grant]).find((y) => y.id === id); return o ? callsOf(log, o) : undefined; } };
    const opMs = (o: Op): number => (o.finishedAt === null ? 0 : Date.parse(o.finishedAt) - Date.parse(o.createdAt));
    const opTotal = ops.map((o) => opMs(o.create) + opMs(o.grant));
    const drv = ops.map((o) => (calls.get(o.create.id)?.ms ?? 0) + (calls.get(o.grant.id)?.ms ?? 0));
    const nCalls = ops.map((o) => (calls.get(o.create.id)?.calls ?? 0) + (calls.get(o.grant.id)?.calls ?? 0));
    const methods = [...(calls.get(ops[0]?.create.id ?? '')?.methods ?? []), '|', ...(calls.get(ops[0]?.grant.id ?? '')?.methods ?? [])];

    console.log(`\nCreate + export + grant of a ${String(SIZE / 1024 / 1024)} MiB tgt volume (dir backing) on storage node ${node.name}, ${String(N)} volumes:`);
    row('API: create?wait + grant?wait (through the node)', both);
    row('  of which create?wait', create);
    row('  of which grant?wait', grant);
    row('raw: truncate + tgtadm x5 in the node (nsenter each)', raw.total);
    row('  nsenter overhead (nsenter true - spawn true; raw pays 6x)', raw.nsenter);
    const ratio = median(both) / median(raw.total);
    const rawNet = Math.max(1, median(raw.total) - 6 * median(raw.nsenter));
    console.log(`  ratio API / raw: ${ratio.toFixed(2)}x   (raw less 6 nsenter: ${(median(both) / rawNet).toFixed(2)}x; same-machine path before nodes: 2.31x; aim <= 1.3x)`);
    console.log('\nSplit of the API path (medians per volume, both operations):');
    row('HTTP + ?wait (request, answer, wait polling)', both.map((b, i) => b - (opTotal[i] ?? 0)));
    row('  of which request in, until the operation row exists', before);
    row('  of which operation finished, until the answer is in', after);
    row('  a GET of one backend, new connection (TLS + auth)', probeNew);
    row('  the same GET on a kept-alive connection', probeKept);
    row('  GET /healthz (no auth, no store) on it', probeHealth);
    row('operation engine + node RPC (op time - driver time)', opTotal.map((t, i) => t - (drv[i] ?? 0)));
    row('driver time on the node (sum of its calls)', drv);
    row('  of which createVolume', ops.map((o) => calls.get(o.create.id)?.ms ?? 0));
    row('  of which grant', ops.map((o) => calls.get(o.grant.id)?.ms ?? 0));
    console.log(`  node calls per volume: ${String(median(nCalls))} (${methods.join(' ')})`);
  } finally {
    await fleet.stop();
  }
}

await main();
