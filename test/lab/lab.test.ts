import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandFailedError, SpawnCommandRunner, type CommandRunner } from '../../src/system/command-runner.js';
import { freshPostgresUrl, testPostgresUrl } from '../helpers/pg.js';
import { startLab, type Lab } from './lab.js';
import { isProcessAlive, type LabState } from './state.js';
import { cleanupStaleLabs, loopBackingFile } from './teardown.js';

const runner = new SpawnCommandRunner();

function netnsList(): string {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
}

/** Asserts that nothing recorded for the lab is left on the machine. */
function expectGone(snapshot: { netns: string[]; links: string[]; loops: { device: string; backingFile: string }[]; pids: number[]; runDir: string; stateFile: string }): void {
  const ns = netnsList();
  for (const n of snapshot.netns) expect(ns).not.toContain(n);
  for (const l of snapshot.links) expect(existsSync(`/sys/class/net/${l}`)).toBe(false);
  for (const l of snapshot.loops) expect(loopBackingFile(l.device)).not.toBe(l.backingFile);
  for (const p of snapshot.pids) expect(isProcessAlive(p)).toBe(false);
  expect(existsSync(snapshot.runDir)).toBe(false);
  expect(existsSync(snapshot.stateFile)).toBe(false);
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  expect(mounts).not.toContain(snapshot.runDir);
}

function snapshotOf(lab: Lab): Parameters<typeof expectGone>[0] {
  const state = JSON.parse(readFileSync(lab.stateFile, 'utf8')) as LabState;
  return {
    netns: state.netns,
    links: state.links,
    loops: state.loops,
    pids: state.processes.map((p) => p.pid),
    runDir: lab.runDir,
    stateFile: lab.stateFile,
  };
}

describe('lab: namespaces, tgtd, btrfs, xfs', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await startLab({ hosts: 2 });
  });

  afterAll(async () => {
    await lab.stop(); // idempotent: normally already stopped by the last test
  });

  it('gives each host its own address on the lab bridge', async () => {
    expect(lab.bridge.length).toBeLessThanOrEqual(15);
    expect(lab.hosts.map((h) => h.name)).toEqual(['h1', 'h2']);
    for (const h of lab.hosts) {
      const { stdout } = await runner.run('ip', ['-n', h.netns, '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      expect(stdout).toContain(`inet ${h.address}/24`);
    }
  });

  it('lets every namespace host reach tgtd on the lab portal', async () => {
    const portals = await lab.tgtadm(['--op', 'show', '--mode', 'portal']);
    expect(portals.stdout).toContain(`Portal: ${lab.portal}`);
    expect(portals.stdout).toContain(`Portal: ${lab.loopbackPortal}`);
    for (const h of lab.hosts) {
      await lab.hostExec(h, 'socat', ['-u', 'OPEN:/dev/null', `TCP:${lab.portal},connect-timeout=5`]);
    }
    // iSCSI discovery (libiscsi fails discovery against a tgtd with no target at all, so add one).
    const iqn = `${lab.iqnPrefix}:open`;
    await lab.tgtadm(['--op', 'new', '--mode', 'target', '--tid', '9', '-T', iqn]);
    await lab.tgtadm(['--op', 'bind', '--mode', 'target', '--tid', '9', '-I', 'ALL']);
    const h1 = lab.host('h1');
    const res = await lab.hostExec(h1, 'iscsi-ls', ['-s', '-i', h1.initiatorName, `iscsi://${lab.portal}`]);
    expect(res.stdout).toContain(`Target:${iqn} Portal:${lab.portal}`);
    await lab.tgtadm(['--op', 'delete', '--mode', 'target', '--tid', '9', '--force']);
  });

  it('serves a target bound to one host address to that host only', async () => {
    const [h1, h2] = lab.hosts;
    if (h1 === undefined || h2 === undefined) throw new Error('two hosts expected');
    const iqn = `${lab.iqnPrefix}:vol1`;
    const backing = join(lab.btrfsDir, 'lun1.img');
    writeFileSync(backing, '');
    truncateSync(backing, 64 * 1024 * 1024);
    await lab.tgtadm(['--op', 'new', '--mode', 'target', '--tid', '1', '-T', iqn]);
    await lab.tgtadm(['--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '1', '-b', backing]);
    await lab.tgtadm(['--op', 'bind', '--mode', 'target', '--tid', '1', '-I', h1.address]);
    const url = `iscsi://${lab.portal}/${iqn}/1`;

    const ok = await lab.hostExec(h1, 'iscsi-readcapacity16', ['-s', '-i', h1.initiatorName, url]);
    expect(ok.stdout).toContain(String(64 * 1024 * 1024));

    const denied = await lab.hostExec(h2, 'iscsi-readcapacity16', ['-s', '-i', h2.initiatorName, url]).then(
      () => null,
      (err: unknown) => err,
    );
    expect(denied).toBeInstanceOf(CommandFailedError);
    expect((denied as CommandFailedError).exitCode).not.toBe(0);
    expect((denied as CommandFailedError).message).toMatch(/Target not found|Login Failed/);

    await lab.tgtadm(['--op', 'delete', '--mode', 'target', '--tid', '1', '--force']);
  });

  it('restarts tgtd empty on the same portal and control port', async () => {
    const oldPid = lab.tgtdPid;
    const portal = lab.portal;
    await lab.tgtadm(['--op', 'new', '--mode', 'target', '--tid', '3', '-T', `${lab.iqnPrefix}:gone`]);
    const newPid = await lab.restartTgtd();
    expect(newPid).not.toBe(oldPid);
    expect(isProcessAlive(oldPid)).toBe(false);
    expect(lab.tgtdPid).toBe(newPid);
    expect(lab.portal).toBe(portal);
    const targets = await lab.tgtadm(['--op', 'show', '--mode', 'target']);
    expect(targets.stdout).not.toContain(`${lab.iqnPrefix}:gone`);
    await lab.hostExec('h2', 'socat', ['-u', 'OPEN:/dev/null', `TCP:${lab.portal},connect-timeout=5`]);
  });

  it('mounts btrfs and xfs that support cp --reflink=always', async () => {
    for (const [dir, fsType] of [[lab.btrfsDir, 'btrfs'], [lab.xfsDir, 'xfs']] as const) {
      const { stdout } = await runner.run('stat', ['-f', '-c', '%T', dir]);
      expect(stdout.trim()).toBe(fsType);
      const src = join(dir, 'src.bin');
      const data = Buffer.alloc(1024 * 1024, fsType);
      writeFileSync(src, data);
      await runner.run('cp', ['--reflink=always', src, join(dir, 'clone.bin')]);
      expect(readFileSync(join(dir, 'clone.bin')).equals(data)).toBe(true);
    }
  });

  it('tears down everything it created', async () => {
    const snap = snapshotOf(lab);
    expect(snap.netns.length).toBe(2);
    expect(snap.loops.length).toBe(2);
    expect(isProcessAlive(lab.tgtdPid)).toBe(true);
    await lab.stop();
    expectGone(snap);
    expect(existsSync(`/var/run/tgtd/socket.${String(lab.tgtdControlPort)}`)).toBe(false);
  });
});

describe('lab: failure paths', () => {
  it('removes what a half-failed start created', async () => {
    // Other test files start labs at the same time, so the machine's whole netns list is no
    // baseline: what this start added must be gone, whatever the others did meanwhile.
    const added: string[] = [];
    const failing: CommandRunner = {
      run: (cmd, args, options) => {
        if (cmd === 'mkfs.xfs') return Promise.reject(new Error('injected mkfs.xfs failure'));
        if (cmd === 'ip' && args[0] === 'netns' && args[1] === 'add' && args[2] !== undefined) added.push(args[2]);
        return runner.run(cmd, args, options);
      },
    };
    const err = await startLab({ hosts: 1, runner: failing }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain('injected mkfs.xfs failure');
    expect(added.length).toBeGreaterThan(0);
    const left = netnsList().split('\n').map((l) => l.split(' ')[0]);
    for (const ns of added) expect(left).not.toContain(ns);
  });

  it('reaps a lab whose owner process died', async () => {
    const lab = await startLab({ hosts: 1, btrfs: true, xfs: false });
    const snap = snapshotOf(lab);
    const dead = spawnSync('true');
    expect(dead.pid).toBeGreaterThan(0);
    const state = JSON.parse(readFileSync(lab.stateFile, 'utf8')) as LabState;
    writeFileSync(lab.stateFile, JSON.stringify({ ...state, ownerPid: dead.pid, ownerStartTicks: 'not-a-start-time' }));
    const errors = await cleanupStaleLabs(runner);
    expect(errors).toEqual([]);
    expectGone(snap);
  });
});

describe('postgres', () => {
  it('answers select 1 on the run server and on a fresh database', async () => {
    for (const url of [testPostgresUrl(), await freshPostgresUrl('lab')]) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const res = await client.query<{ one: number }>('select 1 as one');
        expect(res.rows[0]?.one).toBe(1);
      } finally {
        await client.end();
      }
    }
  });
});
