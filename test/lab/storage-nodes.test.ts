import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpawnCommandRunner } from '../../src/system/command-runner.js';
import { startLab, type Lab, type LabStorageNode } from './lab.js';
import { isProcessAlive, type LabState } from './state.js';
import { MAX_STORAGE_NODES, normalizeNodeSpecs, parseMounts } from './storage-node.js';
import { currentMounts, loopBackingFile } from './teardown.js';

/**
 * Storage nodes of the lab against real components: two nodes, each with its own tgtd on `-C 0`
 * behind a private /run/tgtd, its own loop filesystem, reached by hypervisor namespaces over the
 * bridge with libiscsi's tools and qemu-io.
 */

const runner = new SpawnCommandRunner();
const ANY_EXIT = Array.from({ length: 256 }, (_, i) => i);
const MiB = 1024 * 1024;

function targetIqns(tgtadmShow: string): string[] {
  return [...tgtadmShow.matchAll(/^Target \d+: (\S+)$/gm)].map((m) => m[1] ?? '');
}

/** True when a TCP connection to `portal` from `netns` (null: the root namespace) succeeds. */
async function connects(netns: string | null, portal: string): Promise<boolean> {
  const socat = ['socat', '-u', 'OPEN:/dev/null', `TCP:${portal},connect-timeout=3`];
  const [cmd, ...args] = netns === null ? socat : ['ip', 'netns', 'exec', netns, ...socat];
  const r = await runner.run(cmd ?? 'socat', args, { okExitCodes: ANY_EXIT, timeoutMs: 30_000 });
  return r.exitCode === 0;
}

describe('lab storage nodes: one tgtd, filesystem and mount namespace per node', () => {
  let lab: Lab;
  let sn1: LabStorageNode;
  let sn2: LabStorageNode;

  beforeAll(async () => {
    // btrfs on: a root-namespace loop filesystem that exists before the nodes do.
    lab = await startLab({ hosts: 2, tgtd: false, btrfs: true, btrfsSizeBytes: 512 * MiB, xfs: false, storageNodes: [{ filesystem: 'btrfs' }, { filesystem: 'xfs' }] });
    [sn1, sn2] = [lab.storageNode('sn1'), lab.storageNode('sn2')];
  }, 120_000);

  afterAll(async () => {
    await lab.stop(); // idempotent: normally already stopped by the last test
  });

  it('gives each node its own address, filesystem and 0700 state dir', async () => {
    expect(lab.storageNodes.map((n) => n.name)).toEqual(['sn1', 'sn2']);
    expect(new Set([sn1.address, sn2.address, ...lab.hosts.map((h) => h.address)]).size).toBe(4);
    for (const [n, fs] of [[sn1, 'btrfs'], [sn2, 'xfs']] as const) {
      const addr = await runner.run('ip', ['-n', n.netns, '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      expect(addr.stdout).toContain(`inet ${n.address}/24`);
      const stat = await lab.runInNode(n, ['stat', '-f', '-c', '%T', n.dataDir]);
      expect(stat.stdout.trim()).toBe(fs);
      expect((await runner.run('stat', ['-c', '%a', n.stateDir])).stdout.trim()).toBe('700');
    }
  });

  it('lets each node manage only its own tgtd; the root namespace reaches neither', async () => {
    const iqn1 = `${lab.iqnPrefix}:sn1-only`;
    await lab.nodeTgtadm(sn1, ['--op', 'new', '--mode', 'target', '--tid', '1', '-T', iqn1]);
    expect(targetIqns((await lab.nodeTgtadm(sn1, ['--op', 'show', '--mode', 'target'])).stdout)).toEqual([iqn1]);
    expect(targetIqns((await lab.nodeTgtadm(sn2, ['--op', 'show', '--mode', 'target'])).stdout)).toEqual([]);
    // Both daemons use -C 0; in the root namespace /run/tgtd/socket.0 is not theirs.
    const root = await runner.run('tgtadm', ['-C', '0', '--lld', 'iscsi', '--op', 'show', '--mode', 'target'], { okExitCodes: ANY_EXIT, timeoutMs: 30_000 });
    expect(root.stdout).not.toContain(iqn1);
    if (!existsSync('/run/tgtd/socket.0')) expect(root.exitCode).not.toBe(0);
    await lab.nodeTgtadm(sn1, ['--op', 'delete', '--mode', 'target', '--tid', '1', '--force']);
  });

  it('keeps each node\'s mounts invisible to the other node and to the root namespace', async () => {
    await lab.runInNode(sn1, ['dd', `of=${join(sn1.dataDir, 'marker')}`, 'status=none'], { input: 'sn1' });
    expect(currentMounts()).not.toContain(sn1.dataDir);
    expect(currentMounts()).not.toContain(sn2.dataDir);
    expect(readdirSync(sn1.dataDir)).toEqual([]); // the root sees the bare mount point
    const inSn1 = (await lab.runInNode(sn1, ['cat', '/proc/self/mounts'])).stdout;
    const inSn2 = (await lab.runInNode(sn2, ['cat', '/proc/self/mounts'])).stdout;
    expect(inSn1).toContain(` ${sn1.dataDir} btrfs `);
    expect(inSn1).not.toContain(sn2.dataDir);
    expect(inSn2).toContain(` ${sn2.dataDir} xfs `);
    expect(inSn2).not.toContain(sn1.dataDir);
    // Copies of root loop filesystems (this lab's, other labs') would outlive their umount there.
    expect(currentMounts()).toContain(lab.btrfsDir);
    expect(inSn1).not.toContain(lab.btrfsDir);
    expect(inSn2).not.toContain(lab.btrfsDir);
    const marker = await lab.runInNode(sn2, ['cat', join(sn1.dataDir, 'marker')], { okExitCodes: ANY_EXIT });
    expect(marker.exitCode).not.toBe(0);
    expect((await lab.runInNode(sn1, ['cat', join(sn1.dataDir, 'marker')])).stdout).toBe('sn1');
  });

  it('runs spawned processes inside the node\'s namespaces, in its dir', async () => {
    const child = lab.spawnInNode(sn2, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'], { stdio: ['ignore', 'pipe', 'inherit'], detached: false });
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d; });
    const code = await new Promise<number | null>((res) => child.once('close', res));
    expect(code).toBe(0);
    expect(out).toContain(`inet ${sn2.address}/24`);
    expect((await lab.runInNode(sn2, ['pwd'])).stdout.trim()).toBe(sn2.nodeDir);
    expect(() => { lab.killNodeProcess(process.pid); }).toThrow(/not started by lab/);
  });

  it('serves a LUN on a node\'s filesystem to a hypervisor namespace', async () => {
    const h1 = lab.host('h1');
    const iqn = `${lab.iqnPrefix}:sn1-lun`;
    const backing = join(sn1.dataDir, 'lun1.img');
    await lab.runInNode(sn1, ['truncate', '-s', String(64 * MiB), backing]);
    // 4 KiB of 'Z' (0x5a) at offset 0, written on the node's own filesystem.
    await lab.runInNode(sn1, ['dd', `of=${backing}`, 'bs=4096', 'count=1', 'conv=notrunc', 'status=none'], { input: 'Z'.repeat(4096) });
    await lab.nodeTgtadm(sn1, ['--op', 'new', '--mode', 'target', '--tid', '2', '-T', iqn]);
    await lab.nodeTgtadm(sn1, ['--op', 'new', '--mode', 'logicalunit', '--tid', '2', '--lun', '1', '-b', backing]);
    await lab.nodeTgtadm(sn1, ['--op', 'bind', '--mode', 'target', '--tid', '2', '-I', 'ALL']);

    const ls = await lab.hostExec(h1, 'iscsi-ls', ['-s', '-i', h1.initiatorName, `iscsi://${sn1.portal}`]);
    expect(ls.stdout).toContain(`Target:${iqn} Portal:${sn1.portal}`);
    const url = `iscsi://${sn1.portal}/${iqn}/1`;
    const cap = await lab.hostExec(h1, 'iscsi-readcapacity16', ['-s', '-i', h1.initiatorName, url]);
    expect(cap.stdout).toContain(String(64 * MiB));
    const read = await lab.hostExec(h1, 'qemu-io', ['-r', '-f', 'raw', '-c', 'read -P 0x5a 0 4096', url], { okExitCodes: ANY_EXIT, timeoutMs: 60_000 });
    expect(read.stdout).toContain('read 4096/4096 bytes');
    expect(read.stdout + read.stderr).not.toMatch(/Pattern verification failed/);

    // The other node's portal answers too, with its own (empty) target list.
    expect(await connects(lab.host('h2').netns, sn2.portal)).toBe(true);
  });

  it('partitions a node from the hosts and the root namespace, and heals it', async () => {
    const h2 = lab.host('h2');
    expect(await connects(null, sn1.portal)).toBe(true);
    await lab.partition(sn1);
    expect(await connects(null, sn1.portal)).toBe(false);
    expect(await connects(h2.netns, sn1.portal)).toBe(false);
    expect(await connects(h2.netns, sn2.portal)).toBe(true); // the other node stays up
    await lab.heal(sn1);
    expect(await connects(null, sn1.portal)).toBe(true);
    expect(await connects(h2.netns, sn1.portal)).toBe(true);
    // Hosts partition the same way.
    await lab.partition('h2');
    expect(await connects(h2.netns, sn2.portal)).toBe(false);
    await lab.heal('h2');
    expect(await connects(h2.netns, sn2.portal)).toBe(true);
  });

  it('restarts a node\'s tgtd empty, in the same namespaces', async () => {
    const oldPid = sn1.tgtdPid;
    expect(targetIqns((await lab.nodeTgtadm(sn1, ['--op', 'show', '--mode', 'target'])).stdout)).toContain(`${lab.iqnPrefix}:sn1-lun`);
    const newPid = await lab.restartTgtd(sn1);
    expect(newPid).not.toBe(oldPid);
    expect(sn1.tgtdPid).toBe(newPid);
    expect(isProcessAlive(oldPid)).toBe(false);
    expect(targetIqns((await lab.nodeTgtadm(sn1, ['--op', 'show', '--mode', 'target'])).stdout)).toEqual([]);
    expect(await connects(lab.host('h1').netns, sn1.portal)).toBe(true);
    expect(isProcessAlive(sn2.tgtdPid)).toBe(true);
  });

  it('tears down everything: processes, mount namespaces, netns, veths, loops', async () => {
    const sleeper = lab.spawnInNode(sn2, ['sleep', '3600'], { stdio: 'ignore' });
    sleeper.unref();
    const state = JSON.parse(readFileSync(lab.stateFile, 'utf8')) as LabState;
    const pids = state.processes.map((p) => p.pid);
    expect(pids).toContain(sleeper.pid);
    expect(isProcessAlive(sn2.tgtdPid)).toBe(true);
    const loops = [sn1.loopDevice, sn2.loopDevice];
    await lab.stop();
    for (const p of pids) expect(isProcessAlive(p)).toBe(false);
    const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    for (const n of [sn1, sn2]) {
      expect(netns).not.toContain(n.netns);
      expect(existsSync(`/sys/class/net/${n.veth}`)).toBe(false);
    }
    for (const l of state.loops) expect(loopBackingFile(l.device)).not.toBe(l.backingFile);
    expect(loops.every((d) => d.startsWith('/dev/loop'))).toBe(true);
    expect(readFileSync('/proc/self/mounts', 'utf8')).not.toContain(lab.runDir);
    expect(existsSync(lab.runDir)).toBe(false);
    expect(existsSync(lab.stateFile)).toBe(false);
  });
});

describe('lab storage nodes: bad specs', () => {
  it('refuses a bad count, name or size before creating anything', () => {
    expect(() => normalizeNodeSpecs(-1)).toThrow(/bad storage node count/);
    expect(() => normalizeNodeSpecs(MAX_STORAGE_NODES + 1)).toThrow(/at most/);
    expect(() => normalizeNodeSpecs([{ name: 'Bad Name' }])).toThrow(/bad storage node name/);
    expect(() => normalizeNodeSpecs([{ name: 'a' }, { name: 'a' }])).toThrow(/unique/);
    expect(() => normalizeNodeSpecs([{ sizeBytes: MiB }])).toThrow(/below 300 MiB/);
    expect(normalizeNodeSpecs(2).map((s) => [s.name, s.filesystem])).toEqual([['sn1', 'btrfs'], ['sn2', 'btrfs']]);
  });

  it('reads /proc mounts with escaped spaces', () => {
    expect(parseMounts('/dev/loop3 /tmp/a\\040b btrfs rw 0 0\nproc /proc proc rw 0 0\n')).toEqual([
      { source: '/dev/loop3', target: '/tmp/a b' },
      { source: 'proc', target: '/proc' },
    ]);
  });
});
