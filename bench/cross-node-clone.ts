/**
 * A 1 GiB cross-node clone (`npm run bench:cross-node`): two `stowage node` servers in this process on
 * loopback, each with a dir:// backend in its own directory, and this process as the control plane
 * piping sn1's read route into sn2's write route over the pinned mutual-TLS channels (never its own
 * disk). Compared with `cp` between the two directories (plus an fsync, as the stream flushes
 * too). The volume holds random data, not zeros, so neither side can skip it as holes. Prints
 * figures, asserts nothing.
 */
import { randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { newId } from '../src/core/ids.js';
import { remoteDataStreams } from '../src/nodes/remote-data.js';
import { SpawnCommandRunner } from '../src/system/command-runner.js';
import { startTestFleet, type TestNode } from '../test/nodes/node-kit.js';

const MiB = 1024 * 1024;
const SIZE = 1024 * MiB;
const runner = new SpawnCommandRunner();
const signal = new AbortController().signal;

async function main(): Promise<void> {
  const fleet = await startTestFleet(['sn1', 'sn2'], runner);
  const [a, b, channels] = [fleet.nodes.sn1 as TestNode, fleet.nodes.sn2 as TestNode, fleet.all];
  try {
    const src = await a.driver.createVolume({ id: newId('volume'), name: 'src', sizeBytes: SIZE }, signal);
    const dst = await b.driver.createVolume({ id: newId('volume'), name: 'dst', sizeBytes: SIZE }, signal);
    const srcPath = a.driver.data?.locate(src).path ?? '';
    const fh = await open(srcPath, 'r+');
    for (let off = 0; off < SIZE; off += 4 * MiB) await fh.write(randomBytes(4 * MiB), 0, 4 * MiB, off);
    await fh.sync();
    await fh.close();

    const rss0 = process.memoryUsage().rss;
    let peakRss = rss0;
    const t0 = performance.now();
    const data = await remoteDataStreams(channels, 'sn1', a.backend).openRead(src, signal);
    await remoteDataStreams(channels, 'sn2', b.backend).writeFrom(dst, data, signal, (n) => { if (n % (16 * MiB) < 64 * 1024) peakRss = Math.max(peakRss, process.memoryUsage.rss()); });
    const streamMs = performance.now() - t0;

    const cpDst = join(b.root, 'volumes', 'cp-copy.raw');
    const t1 = performance.now();
    await runner.run('cp', ['--reflink=never', '--', srcPath, cpDst], { timeoutMs: 600_000 });
    await runner.run('sync', ['--', cpDst], { timeoutMs: 600_000 });
    const cpMs = performance.now() - t1;
    await rm(cpDst, { force: true });

    const mbps = (ms: number): number => SIZE / MiB / (ms / 1000);
    console.log(`1 GiB of random data, sn1 -> sn2 through the control plane (2 x pinned TLS over loopback, fsync):`);
    console.log(`  streamed clone   ${streamMs.toFixed(0).padStart(7)} ms  ${mbps(streamMs).toFixed(0).padStart(5)} MiB/s   (peak RSS +${((peakRss - rss0) / MiB).toFixed(1)} MiB, both nodes in this process)`);
    console.log(`  cp + sync        ${cpMs.toFixed(0).padStart(7)} ms  ${mbps(cpMs).toFixed(0).padStart(5)} MiB/s`);
    console.log(`  ratio stream/cp  ${(streamMs / cpMs).toFixed(2)}x`);
  } finally {
    await fleet.stop();
  }
}

await main();
