/**
 * Clone and export benchmarks on the real lab (root; `npx tsx bench/clone.ts`). Prints figures,
 * asserts nothing.
 *
 * 1. Cloning a 1 GiB volume full of data: btrfs driver clone (writable subvolume snapshot),
 *    `cp --reflink=always` on btrfs and XFS, host copy with `qemu-img convert`, and a plain
 *    `cp --reflink=never` (coreutils' default is reflink=auto, which would not be a copy).
 * 2. create + export + grant of a volume through the tgt driver versus the same steps as raw
 *    commands (btrfs subvolume + truncate + tgtadm), and the ratio.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { newId } from '../src/core/ids.js';
import { SpawnCommandRunner } from '../src/system/command-runner.js';
import { BtrfsDriver, parseBtrfsOptions } from '../src/drivers/btrfs/btrfs-driver.js';
import { createTgtDriver } from '../src/drivers/tgt/tgt-driver.js';
import { startLab } from '../test/lab/lab.js';

const GiB = 1024 ** 3;
const ROUNDS = 3;
const TGT_ROUNDS = 20;
const runner = new SpawnCommandRunner();
const signal = new AbortController().signal;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

function row(label: string, ms: readonly number[]): void {
  console.log(`${label.padEnd(52)} median ${median(ms).toFixed(1).padStart(9)} ms   (${ms.map((m) => m.toFixed(1)).join(', ')})`);
}

const run = (cmd: string, args: readonly string[]): Promise<unknown> => runner.run(cmd, args, { timeoutMs: 600_000 });

async function settle(fsDir: string): Promise<void> {
  await run('sync', ['-f', fsDir]);
}

async function cloneBench(btrfsDir: string, xfsDir: string): Promise<void> {
  const driver = new BtrfsDriver(parseBtrfsOptions(new URL(`btrfs://${btrfsDir}/pool`), {}), runner);
  const src = await driver.createVolume({ id: newId('volume'), name: 'src', sizeBytes: GiB }, signal);
  const srcPath = driver.data.locate(src).path;
  console.log('filling the 1 GiB source volume with random data ...');
  await run('dd', ['if=/dev/urandom', `of=${srcPath}`, 'bs=4M', 'count=256', 'conv=notrunc,fsync', 'status=none']);
  const xfsSrc = join(xfsDir, 'src.raw');
  await run('cp', ['--reflink=never', srcPath, xfsSrc]);
  await settle(btrfsDir);
  await settle(xfsDir);

  const results: [string, number[]][] = [
    ['btrfs driver cloneVolume (writable snapshot)', []],
    ['cp --reflink=always on btrfs', []],
    ['cp --reflink=always on XFS', []],
    ['qemu-img convert -O raw (host copy, btrfs) + sync', []],
    ['cp --reflink=never (plain copy, btrfs) + sync', []],
  ];
  const add = (i: number, ms: number): void => { results[i]?.[1].push(ms); };
  for (let r = 0; r < ROUNDS; r++) {
    const clone = { id: newId('volume'), name: 'c', sizeBytes: GiB };
    add(0, await timed(() => driver.clones.clone(src, clone, signal)));
    await driver.deleteVolume({ volumeId: clone.id }, signal);

    const reflinkDst = join(btrfsDir, `reflink-${String(r)}.raw`);
    add(1, await timed(() => run('cp', ['--reflink=always', srcPath, reflinkDst])));
    await rm(reflinkDst);

    const xfsDst = join(xfsDir, `reflink-${String(r)}.raw`);
    add(2, await timed(() => run('cp', ['--reflink=always', xfsSrc, xfsDst])));
    await rm(xfsDst);

    const convertDst = join(btrfsDir, `convert-${String(r)}.raw`);
    add(3, await timed(async () => { await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', srcPath, convertDst]); await settle(btrfsDir); }));
    await rm(convertDst);
    await run('btrfs', ['filesystem', 'sync', btrfsDir]);

    const cpDst = join(btrfsDir, `cp-${String(r)}.raw`);
    add(4, await timed(async () => { await run('cp', ['--reflink=never', srcPath, cpDst]); await settle(btrfsDir); }));
    await rm(cpDst);
    await run('btrfs', ['filesystem', 'sync', btrfsDir]);
  }
  console.log(`\nClone of a 1 GiB volume full of data (${String(ROUNDS)} rounds):`);
  for (const [label, ms] of results) row(label, ms);
  const offload = median(results[0]?.[1] ?? []);
  const copy = median(results[4]?.[1] ?? []);
  if (offload > 0) console.log(`plain copy / driver clone: ${(copy / offload).toFixed(0)}x`);
  await driver.deleteVolume(src, signal);
}

async function exportBench(lab: Awaited<ReturnType<typeof startLab>>): Promise<void> {
  const host = lab.host('h1');
  const dataDir = await mkdtemp(join(tmpdir(), 'stowage-bench-tgt-'));
  const uri = `tgt://${lab.portal}?backing=${encodeURIComponent(`btrfs://${lab.btrfsDir}/luns`)}&control=${String(lab.tgtdControlPort)}&iqnPrefix=${encodeURIComponent(lab.iqnPrefix)}`;
  const driver = createTgtDriver(new URL(uri), {}, { runner, dataDir });
  await driver.probe(signal);
  const viaDriver: number[] = [];
  const viaRaw: number[] = [];
  const tgtadmOnly: number[] = [];
  const rawDir = join(lab.btrfsDir, 'raw');
  await run('mkdir', ['-p', rawDir]);
  const tgtadm = (args: readonly string[], secrets: readonly string[] = []): Promise<unknown> =>
    runner.run('tgtadm', ['-C', String(lab.tgtdControlPort), '--lld', 'iscsi', ...args], { timeoutMs: 30_000, secrets });
  for (let i = 0; i < TGT_ROUNDS; i++) {
    const id = newId('volume');
    const chap = { user: `bench-${String(i)}-${String(process.pid)}`, secret: `BenchSecret${String(i).padStart(4, '0')}x` };
    viaDriver.push(await timed(async () => {
      const h = await driver.createVolume({ id, name: 'b', sizeBytes: GiB }, signal);
      await driver.access.grant(h, { host: { name: host.name, addresses: [host.address] }, mode: 'rw', chap }, signal);
    }));

    const rawId = newId('volume');
    const tid = String(100_000 - i); // the driver allocates upwards from max+1, so count down
    const sub = join(rawDir, rawId);
    const rawUser = `raw-${chap.user}`;
    let tgtMs = 0;
    viaRaw.push(await timed(async () => {
      await run('btrfs', ['subvolume', 'create', sub]);
      await run('truncate', ['-s', String(GiB), join(sub, 'disk.raw')]);
      tgtMs = await timed(async () => {
        await tgtadm(['--op', 'new', '--mode', 'target', '--tid', tid, '-T', `${lab.iqnPrefix}-raw:${rawId}`]);
        await tgtadm(['--op', 'new', '--mode', 'logicalunit', '--tid', tid, '--lun', '1', '-b', join(sub, 'disk.raw')]);
        await tgtadm(['--op', 'update', '--mode', 'logicalunit', '--tid', tid, '--lun', '1', '--params', 'thin_provisioning=1']);
        await tgtadm(['--op', 'bind', '--mode', 'target', '--tid', tid, '-I', host.address]);
        await tgtadm(['--op', 'new', '--mode', 'account', '--user', rawUser, '--password', chap.secret], [chap.secret]);
        await tgtadm(['--op', 'bind', '--mode', 'account', '--tid', tid, '--user', rawUser]);
      });
    }));
    tgtadmOnly.push(tgtMs);
  }
  console.log(`\ncreate + export + grant (CHAP) of a 1 GiB thin volume (${String(TGT_ROUNDS)} rounds):`);
  row('tgt driver (btrfs backing): createVolume + grantAccess', viaDriver);
  row('raw: btrfs subvolume create + truncate + 6 tgtadm', viaRaw);
  row('raw: the 6 tgtadm calls alone', tgtadmOnly);
  console.log(`ratio driver / raw commands: ${(median(viaDriver) / median(viaRaw)).toFixed(2)}x`);
  await rm(dataDir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const lab = await startLab({ hosts: 1, tgtd: true, btrfs: true, xfs: true, btrfsSizeBytes: 8 * GiB, xfsSizeBytes: 4 * GiB });
  try {
    console.log(`lab ${lab.runId}: btrfs ${lab.btrfsDir}, xfs ${lab.xfsDir}, tgtd control ${String(lab.tgtdControlPort)}`);
    await cloneBench(lab.btrfsDir, lab.xfsDir);
    await exportBench(lab);
  } finally {
    await lab.stop();
  }
}

await main();
