/**
 * The CLI's own cost per command (`npm run bench:cli`, needs `npm run build`): wall time of
 * `bin/stowage.js` commands against the real built server on its embedded defaults, BENCH_RUNS
 * times each (default 20), beside two baselines in the same run: a bare `node -e 0` (what any Node
 * command costs to start) and a plain Node script that sends one GET /v1/volumes with node:http
 * and reads the answer (what a CLI call cannot go below). The target is 100 ms per command. Prints figures;
 * asserts nothing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pct, REPO, startServe } from './serve-kit.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 20);
const TARGET_MS = 100;

const root = mkdtempSync(join(tmpdir(), 'stowage-bench-cli-'));
process.on('exit', () => { rmSync(root, { recursive: true, force: true }); });

/** Runs `argv` RUNS times (`each` gives the i-th run's arguments); its wall times in ms. */
function timeRuns(env: NodeJS.ProcessEnv, each: (i: number) => readonly string[]): number[] {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const args = each(i);
    const t = performance.now();
    const r = spawnSync(process.execPath, args, { env, encoding: 'utf8' });
    times.push(performance.now() - t);
    if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${String(r.status)}: ${r.stderr.slice(0, 500)}`);
  }
  return times;
}

async function main(): Promise<void> {
  const serve = await startServe(join(root, 'serve'));
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root, STOWAGE_CLI_CONFIG: serve.cliConfig };
  const cli = join(REPO, 'bin', 'stowage.js');
  // The floor of a CLI call: start node, send the one request, read the answer (node:http, as the CLI does).
  const request = `import { request } from 'node:http';
    const req = request(new URL('/v1/volumes?limit=100', ${JSON.stringify(serve.url.href)}), { headers: { authorization: 'Bearer ${serve.token}' } }, (res) => {
      res.resume(); res.on('end', () => { process.exitCode = res.statusCode === 200 ? 0 : 1; });
    });
    req.end();`;
  const bare = timeRuns(env, () => ['-e', '0']);
  const raw = timeRuns(env, () => ['--input-type=module', '-e', request]);
  console.log(`bench:cli — ${String(RUNS)} runs each, against stowage serve on the embedded defaults`);
  console.log(`  baseline: node -e 0                                p50 ${pct(bare, 50).toFixed(0).padStart(4)} ms`);
  console.log(`  baseline: node + one GET /v1/volumes (node:http) p50 ${pct(raw, 50).toFixed(0).padStart(4)} ms`);
  const line = (what: string, times: readonly number[]): void => {
    const p50 = pct(times, 50);
    console.log(`  ${what.padEnd(44)} p50 ${p50.toFixed(0).padStart(4)} ms   p90 ${pct(times, 90).toFixed(0).padStart(4)} ms   x${(p50 / pct(raw, 50)).toFixed(2)} of node + one request; target ≤ ${String(TARGET_MS)} ms`);
  };
  line('stowage volume create vN --size 1M', timeRuns(env, (i) => [cli, 'volume', 'create', `v${String(i)}`, '--size', '1M']));
  line('stowage volume list', timeRuns(env, () => [cli, 'volume', 'list']));
  line('stowage volume show v0 -o json', timeRuns(env, () => [cli, 'volume', 'show', 'v0', '-o', 'json']));
  line('stowage backend list', timeRuns(env, () => [cli, 'backend', 'list']));
  line('stowage volume delete vN --yes', timeRuns(env, (i) => [cli, 'volume', 'delete', `v${String(i)}`, '--yes']));
  line('stowage --help (loads every command)', timeRuns(env, () => [cli, '--help']));
}

await main();
process.exit(0);
