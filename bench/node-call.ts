/**
 * One node call's round trip (`npm run bench:node-call`): a `stowage node` server in this process on
 * loopback (the real call route, NodeDriverHost, pinned mutual TLS, logs at info as `stowage node
 * run` defaults to) with a dir:// backend, called through RemoteBlockDriver (listVolumes, probe)
 * over NodeClient's kept-alive channel. Baselines measured in the same run: the same driver method
 * called locally, a bare HTTPS request with the same mutual TLS to a trivial handler, and a plain
 * HTTP one, both keep-alive. Prints p50/p95 and ratios, asserts nothing.
 */
import { createServer as createHttpServer, Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { createServer as createHttpsServer, Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { newId } from '../src/core/ids.js';
import { DRIVER_FACTORIES } from '../src/drivers/driver-factories.js';
import { callRoutes } from '../src/node/call-routes.js';
import { NodeDriverHost } from '../src/node/driver-host.js';
import { startNodeServer } from '../src/node/node-server.js';
import { SpawnCommandRunner } from '../src/system/command-runner.js';
import { pinnedClientTls, pinnedServerTls } from '../src/system/tls-identity.js';
import { remoteBackend, testIdentities, TestChannels, type ChannelTarget } from '../test/nodes/node-kit.js';
import { pct } from './serve-kit.js';

const ROUNDS = 2000;
const WARMUP = 200;
const VOLUMES = 10;
const runner = new SpawnCommandRunner();
const signal = new AbortController().signal;


async function measure(fn: () => Promise<unknown>, rounds = ROUNDS): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

function row(label: string, ms: readonly number[], base?: readonly number[]): void {
  const ratio = base ? `   x${(pct(ms, 50) / pct(base, 50)).toFixed(2)} of bare mTLS` : '';
  console.log(`  ${label.padEnd(52)} p50 ${(pct(ms, 50) * 1000).toFixed(0).padStart(6)} us   p95 ${(pct(ms, 95) * 1000).toFixed(0).padStart(6)} us${ratio}`);
}

function get(req: typeof httpRequest, opts: RequestOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const r = req(opts, (res: IncomingMessage) => { res.resume(); res.on('end', resolve); res.on('error', reject); });
    r.on('error', reject);
    r.end();
  });
}

async function main(): Promise<void> {
  const ids = await testIdentities(runner);
  const dataDir = await mkdtemp(join(tmpdir(), 'stowage-bench-node-'));
  const volDir = join(dataDir, 'vols');
  await mkdir(volDir, { mode: 0o700 });
  const logger = pino({ level: 'info' }, pino.destination('/dev/null'));
  const host = new NodeDriverHost(DRIVER_FACTORIES, { runner, dataDir });
  const server = await startNodeServer({
    name: 'node-test', listen: { host: '127.0.0.1', port: 0 }, identity: ids.node, controlPlaneCertPem: ids.control.certPem,
    dataDir, runner, factories: DRIVER_FACTORIES, logger, version: 'bench',
  }, callRoutes(host, logger));
  const node: ChannelTarget = { name: 'node-test', identity: ids.node, server };
  const channels = new TestChannels(node, ids);
  const trivial = (_req: IncomingMessage, res: import('node:http').ServerResponse): void => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' }).end('{}'); };
  const bareTls = createHttpsServer(pinnedServerTls(ids.node, ids.control.certPem), trivial);
  const bareHttp = createHttpServer(trivial);
  await Promise.all([bareTls, bareHttp].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
  const tlsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 16, ...pinnedClientTls(ids.node.certPem, ids.control) });
  const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 16 });
  try {
    await channels.sync();
    const { driver, local } = remoteBackend(channels, runner, join(dataDir, 'control'), `dir://${volDir}`, channels.row.id);
    for (let i = 0; i < VOLUMES; i++) await local.createVolume({ id: newId('volume'), name: `v${String(i)}`, sizeBytes: 1024 * 1024 }, signal);

    const tlsPort = (bareTls.address() as AddressInfo).port;
    const httpPort = (bareHttp.address() as AddressInfo).port;
    const bare = await measure(() => get(httpsRequest, { host: '127.0.0.1', port: tlsPort, path: '/', agent: tlsAgent }));
    const plain = await measure(() => get(httpRequest, { host: '127.0.0.1', port: httpPort, path: '/', agent: httpAgent }));
    const health = await measure(() => channels.client.health(signal));
    const remoteList = await measure(() => driver.listVolumes(signal));
    const localList = await measure(() => local.listVolumes(signal));
    const remoteProbe = await measure(() => driver.probe(signal), 200);
    const localProbe = await measure(() => local.probe(signal), 200);

    console.log(`\nOne node call over loopback (${String(ROUNDS)} rounds after ${String(WARMUP)} warm-up; probe 200 rounds; dir:// backend with ${String(VOLUMES)} volumes):`);
    row('plain HTTP, keep-alive, trivial handler', plain, bare);
    row('bare HTTPS, same mutual TLS, keep-alive, trivial', bare, bare);
    row('NodeClient.health (node server, no driver)', health, bare);
    row('RemoteBlockDriver.listVolumes', remoteList, bare);
    row('  local DirDriver.listVolumes (same call, no node)', localList);
    row('RemoteBlockDriver.probe', remoteProbe, bare);
    row('  local DirDriver.probe', localProbe);
    const listOverhead = pct(remoteList, 50) - pct(localList, 50);
    console.log(`  node call overhead (remote - local listVolumes, p50): ${(listOverhead * 1000).toFixed(0)} us = x${(listOverhead / pct(bare, 50)).toFixed(2)} of a bare mTLS round trip`);
  } finally {
    channels.close();
    tlsAgent.destroy();
    httpAgent.destroy();
    await Promise.all([bareTls, bareHttp].map((s) => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => { r(); }); })));
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
