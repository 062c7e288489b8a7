import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../core/ids.js';
import { SpawnCommandRunner, type RunResult } from '../../system/command-runner.js';
import { requirePort } from '../sdk/ports.js';
import type { ChapCredentials, ConnectionInfo, DriverHandle, GrantRequest, HostIdentity } from '../sdk/types.js';
import { startLab, type Lab, type LabHost } from '../../../test/lab/lab.js';
import { createTgtDriver, type TgtDriver } from './tgt-driver.js';
import { TgtadmClient } from './tgtadm-client.js';

const MiB = 1024 * 1024;
const runner = new SpawnCommandRunner();
const signal = new AbortController().signal;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function hostOf(h: LabHost): HostIdentity {
  return { name: h.name, addresses: [h.address], initiatorName: h.initiatorName };
}

/** Runs a command in a host namespace, returning the result whatever the exit code. */
async function inHost(lab: Lab, h: LabHost, cmd: string, args: readonly string[], secrets: readonly string[] = []): Promise<RunResult> {
  return lab.hostExec(h, cmd, args, { okExitCodes: Array.from({ length: 256 }, (_, i) => i), timeoutMs: 60_000, secrets });
}

/** `iscsi-readcapacity16` from inside a host, with CHAP through libiscsi's environment variables. */
async function readCapacity(lab: Lab, h: LabHost, iqn: string, chap?: ChapCredentials): Promise<RunResult> {
  return lab.runner.run('ip', ['netns', 'exec', h.netns, 'iscsi-readcapacity16', '-s', '-i', h.initiatorName, `iscsi://${lab.portal}/${iqn}/1`], {
    okExitCodes: Array.from({ length: 256 }, (_, i) => i),
    timeoutMs: 60_000,
    ...(chap ? { env: { LIBISCSI_CHAP_USERNAME: chap.user, LIBISCSI_CHAP_PASSWORD: chap.secret }, secrets: [chap.secret] } : {}),
  });
}

function iscsiUrl(lab: Lab, iqn: string, chap?: ChapCredentials): string {
  return `iscsi://${chap ? `${chap.user}%${chap.secret}@` : ''}${lab.portal}/${iqn}/1`;
}

async function readFileAt(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, offset);
    return buf;
  } finally {
    await fh.close();
  }
}

/** Polls `check` until it returns true (tgtd session state settles asynchronously). */
async function eventually(check: () => Promise<boolean>, what: string, tries = 100): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The credentials a host logs in with: what the access grant returned. */
function loginOf(info: ConnectionInfo): ChapCredentials {
  if (info.chapUser === undefined || info.chapSecret === undefined) throw new Error('grant returned no CHAP credentials');
  return { user: info.chapUser, secret: info.chapSecret };
}

function chapFor(name: string): ChapCredentials {
  return { user: `stw-${name}-${String(process.pid)}`, secret: `Sec${newId('grant').slice(3, 19)}` };
}

describe('tgt driver against a real tgtd, libiscsi initiators in namespaces, btrfs backing', () => {
  let lab: Lab;
  let driver: TgtDriver;
  let dataDir: string;
  let h1: LabHost;
  let h2: LabHost;
  let h3: LabHost;
  const children: ChildProcess[] = [];
  let restartedTgtd: number | undefined;

  beforeAll(async () => {
    lab = await startLab({ hosts: 3, tgtd: true, btrfs: true, xfs: false, btrfsSizeBytes: 3 * 1024 * MiB });
    [h1, h2, h3] = [lab.host('h1'), lab.host('h2'), lab.host('h3')];
    dataDir = await mkdtemp(join(tmpdir(), 'stowage-tgt-test-'));
    const uri = `tgt://${lab.portal}?backing=${encodeURIComponent(`btrfs://${lab.btrfsDir}/luns`)}&control=${String(lab.tgtdControlPort)}&iqnPrefix=${encodeURIComponent(lab.iqnPrefix)}`;
    driver = createTgtDriver(new URL(uri), {}, { runner, dataDir });
  });

  afterAll(async () => {
    for (const c of children) if (c.pid !== undefined && c.exitCode === null) process.kill(c.pid, 'SIGKILL');
    if (restartedTgtd !== undefined) {
      try { process.kill(restartedTgtd, 'SIGKILL'); } catch { /* already gone */ }
    }
    await lab.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('probes tgtd and the backing store, and reports an unreachable tgtd as BACKEND_UNAVAILABLE', async () => {
    const report = await driver.probe(signal);
    expect(report.capabilities).toEqual(expect.arrayContaining(['thin', 'resize', 'access.address', 'access.chap', 'snapshot.offload', 'clone.offload']));
    expect(report.totalBytes).toBe(3 * 1024 * MiB);
    const dead = createTgtDriver(new URL(`tgt://${lab.portal}?backing=btrfs://${lab.btrfsDir}/luns&control=1`), {}, { runner, dataDir });
    await expect(dead.probe(signal)).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
  });

  let vol: DriverHandle;
  let volIqn: string;
  const chap1 = chapFor('h1');
  let login1: ChapCredentials;

  it('exports a thin LUN and lets only the granted host with the right CHAP secret in', async () => {
    vol = await driver.createVolume({ id: newId('volume'), name: 'v1', sizeBytes: 64 * MiB }, signal);
    volIqn = String(vol.iqn);
    expect(volIqn).toBe(`${lab.iqnPrefix}:${String(vol.volumeId)}`);
    expect(await driver.createVolume({ id: String(vol.volumeId), name: 'v1', sizeBytes: 64 * MiB }, signal)).toEqual(vol);
    const grant: GrantRequest = { host: hostOf(h1), mode: 'rw', chap: chap1 };
    const info = await driver.access.grant(vol, grant, signal);
    expect(info).toEqual({ protocol: 'iscsi', portal: lab.portal, iqn: volIqn, lun: 1, chapUser: `${chap1.user}.${String(vol.volumeId)}`, chapSecret: chap1.secret, mode: 'rw' });
    expect(await driver.access.grant(vol, grant, signal)).toEqual(info);
    login1 = loginOf(info);

    const ok = await readCapacity(lab, h1, volIqn, login1);
    expect(ok.stdout.trim()).toBe(String(64 * MiB));
    expect(ok.exitCode).toBe(0);

    const io = await inHost(lab, h1, 'qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 0 4k', '-c', 'read -P 0xab 0 4k', iscsiUrl(lab, volIqn, login1)], [login1.secret]);
    expect(io.stdout).toContain('wrote 4096/4096 bytes at offset 0');
    expect(io.stdout).toContain('read 4096/4096 bytes at offset 0');
    expect(io.stdout + io.stderr).not.toMatch(/Pattern verification failed|failed/i);
    expect((await readFileAt(driver.data.locate(vol).path, 0, 4096)).every((b) => b === 0xab)).toBe(true);

    const other = await readCapacity(lab, h2, volIqn, login1);
    expect(other.exitCode).not.toBe(0);
    expect(other.stderr).toMatch(/Target not found|Login Failed/i);

    const wrong = await readCapacity(lab, h1, volIqn, { user: login1.user, secret: 'WrongSecret1234' });
    expect(wrong.exitCode).not.toBe(0);
    expect(wrong.stderr).toMatch(/Authentication failure/i);

    const none = await readCapacity(lab, h1, volIqn);
    expect(none.exitCode).not.toBe(0);

    expect(await driver.access.list(signal)).toContainEqual({ volumeId: vol.volumeId, initiator: h1.address, chapUser: login1.user });
    const target = (await new TgtadmClient(runner, lab.tgtdControlPort).showTargets(signal)).find((t) => t.iqn === volIqn);
    expect(target?.luns.find((l) => l.lun === 1)).toMatchObject({ thin: true, readonly: false, backingPath: driver.data.locate(vol).path });
  });

  it('revoking drops the live session and refuses the next login', async () => {
    const tgtadm = new TgtadmClient(runner, lab.tgtdControlPort);
    const sessionsFrom = async (addr: string): Promise<number> =>
      ((await tgtadm.showTargets(signal)).find((t) => t.iqn === volIqn)?.sessions ?? []).filter((s) => s.connections.some((c) => c.address === addr)).length;
    // An interactive qemu-io keeps its iSCSI session open while stdin stays open.
    const child = spawn('ip', ['netns', 'exec', h1.netns, 'qemu-io', '-f', 'raw', iscsiUrl(lab, volIqn, login1)], { stdio: ['pipe', 'ignore', 'ignore'] });
    children.push(child);
    await eventually(async () => (await sessionsFrom(h1.address)) > 0, 'a session from h1');

    await driver.access.revoke(vol, hostOf(h1), signal);
    await eventually(async () => (await sessionsFrom(h1.address)) === 0, 'h1 sessions to be dropped');
    // The initiator retries the login by itself; it must stay out.
    await sleep(1500);
    expect(await sessionsFrom(h1.address)).toBe(0);
    const again = await readCapacity(lab, h1, volIqn, login1);
    expect(again.exitCode).not.toBe(0);
    expect(await tgtadm.showAccounts(signal)).not.toContain(login1.user);
    expect((await driver.access.list(signal)).filter((g) => g.volumeId === vol.volumeId)).toEqual([]);
    await driver.access.revoke(vol, hostOf(h1), signal);
    child.stdin?.end();
  });

  let roVol: DriverHandle;

  it('two read-only grants both read; the LUN is read-only until a read-write grant arrives', async () => {
    roVol = await driver.createVolume({ id: newId('volume'), name: 'ro', sizeBytes: 32 * MiB }, signal);
    const iqn = String(roVol.iqn);
    const c1 = chapFor('ro1');
    const c2 = chapFor('ro2');
    const i1 = await driver.access.grant(roVol, { host: hostOf(h1), mode: 'ro', chap: c1 }, signal);
    expect(i1.mode).toBe('ro');
    const l1 = loginOf(i1);
    const l2 = loginOf(await driver.access.grant(roVol, { host: hostOf(h2), mode: 'ro', chap: c2 }, signal));
    expect((await readCapacity(lab, h1, iqn, l1)).stdout.trim()).toBe(String(32 * MiB));
    expect((await readCapacity(lab, h2, iqn, l2)).stdout.trim()).toBe(String(32 * MiB));
    const read = await inHost(lab, h2, 'qemu-io', ['-r', '-f', 'raw', '-c', 'read -P 0 0 4k', iscsiUrl(lab, iqn, l2)], [l2.secret]);
    expect(read.stdout).toContain('read 4096/4096 bytes at offset 0');
    const write = await inHost(lab, h1, 'qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 0 4k', iscsiUrl(lab, iqn, l1)], [l1.secret]);
    expect(write.stdout + write.stderr).toMatch(/write failed|Permission denied|Operation not permitted|read-only|protected/i);

    const tgtadm = new TgtadmClient(runner, lab.tgtdControlPort);
    const lunOf = async (): Promise<{ readonly: boolean } | undefined> => (await tgtadm.showTargets(signal)).find((t) => t.iqn === iqn)?.luns.find((l) => l.lun === 1);
    expect(await lunOf()).toMatchObject({ readonly: true });
    await driver.access.grant(roVol, { host: hostOf(h3), mode: 'rw', chap: chapFor('rw3') }, signal);
    expect(await lunOf()).toMatchObject({ readonly: false });
    await driver.access.revoke(roVol, hostOf(h3), signal);
    expect(await lunOf()).toMatchObject({ readonly: true });
  });

  it('grows the LUN so initiators see the new size', async () => {
    await driver.access.grant(vol, { host: hostOf(h1), mode: 'rw', chap: chap1 }, signal);
    await driver.resizeVolume(vol, 96 * MiB, signal);
    expect((await readCapacity(lab, h1, volIqn, login1)).stdout.trim()).toBe(String(96 * MiB));
    await expect(driver.resizeVolume(vol, 32 * MiB, signal)).rejects.toMatchObject({ code: 'SHRINK_NOT_SUPPORTED' });
  });

  it('clones and reverts through the backing store (offloaded); tgtd serves the clone and the reverted data', async () => {
    // A btrfs backing store has all three ports, and tgt passes each one through.
    const [snapshots, clones, revert] = [requirePort(driver, 'snapshots', 'tgt'), requirePort(driver, 'clones', 'tgt'), requirePort(driver, 'revert', 'tgt')];
    const snap = await snapshots.create(vol, newId('snapshot'), signal);
    const clone = await clones.clone(snap, { id: newId('volume'), name: 'clone', sizeBytes: 96 * MiB }, signal);
    const c = chapFor('clone');
    const lc = loginOf(await driver.access.grant(clone, { host: hostOf(h2), mode: 'rw', chap: c }, signal));
    const io = await inHost(lab, h2, 'qemu-io', ['-f', 'raw', '-c', 'read -P 0xab 0 4k', iscsiUrl(lab, String(clone.iqn), lc)], [lc.secret]);
    expect(io.stdout).toContain('read 4096/4096 bytes at offset 0');
    expect(io.stdout + io.stderr).not.toMatch(/failed/i);
    const show = (await runner.run('btrfs', ['subvolume', 'show', `${lab.btrfsDir}/luns/${String(clone.volumeId)}`])).stdout;
    expect(show).toMatch(/Parent UUID:\s+[0-9a-f-]{36}/);
    await driver.deleteVolume(clone, signal);

    // Revert swaps the backing file; tgtd must serve the reverted data, not the old inode.
    const over = await inHost(lab, h1, 'qemu-io', ['-f', 'raw', '-c', 'write -P 0xcd 0 4k', iscsiUrl(lab, volIqn, login1)], [login1.secret]);
    expect(over.stdout).toContain('wrote 4096/4096 bytes at offset 0');
    await revert.revert(vol, snap, signal);
    const back = await inHost(lab, h1, 'qemu-io', ['-f', 'raw', '-c', 'read -P 0xab 0 4k', iscsiUrl(lab, volIqn, login1)], [login1.secret]);
    expect(back.stdout).toContain('read 4096/4096 bytes at offset 0');
    expect(back.stdout + back.stderr).not.toMatch(/failed/i);
    await snapshots.delete(snap, signal);
  });

  it('one CHAP user per host with a different secret per volume (as the core issues them) works on both volumes', async () => {
    const user = `stw-${h3.name}-${String(process.pid)}`;
    const a = await driver.createVolume({ id: newId('volume'), name: 'a', sizeBytes: 16 * MiB }, signal);
    const b = await driver.createVolume({ id: newId('volume'), name: 'b', sizeBytes: 16 * MiB }, signal);
    const la = loginOf(await driver.access.grant(a, { host: hostOf(h3), mode: 'rw', chap: { user, secret: 'SecretForVolA1' } }, signal));
    const lb = loginOf(await driver.access.grant(b, { host: hostOf(h3), mode: 'rw', chap: { user, secret: 'SecretForVolB2' } }, signal));
    expect(la.user).not.toBe(lb.user);
    expect((await readCapacity(lab, h3, String(a.iqn), la)).exitCode).toBe(0);
    expect((await readCapacity(lab, h3, String(b.iqn), lb)).exitCode).toBe(0);
    expect((await readCapacity(lab, h3, String(a.iqn), { user: la.user, secret: lb.secret })).exitCode).not.toBe(0);
    // A rotated secret replaces the old one.
    const rotated = loginOf(await driver.access.grant(a, { host: hostOf(h3), mode: 'rw', chap: { user, secret: 'RotatedSecret3' } }, signal));
    expect((await readCapacity(lab, h3, String(a.iqn), rotated)).exitCode).toBe(0);
    expect((await readCapacity(lab, h3, String(a.iqn), la)).exitCode).not.toBe(0);
    expect((await readCapacity(lab, h3, String(b.iqn), lb)).exitCode).toBe(0);
    await driver.deleteVolume(a, signal);
    await driver.deleteVolume(b, signal);
    const accounts = await new TgtadmClient(runner, lab.tgtdControlPort).showAccounts(signal);
    expect(accounts.filter((u) => u.startsWith(user))).toEqual([]);
  });

  it('after a tgtd crash and restart, the exports port restores targets and ACLs and removes orphans', async () => {
    process.kill(lab.tgtdPid, 'SIGKILL');
    await eventually(async () => (await runner.run('tgtadm', ['-C', String(lab.tgtdControlPort), '--op', 'show', '--mode', 'target'], { okExitCodes: [0, 107] })).exitCode !== 0, 'tgtd to die');
    const logFd = openSync(join(lab.runDir, 'tgtd-restarted.log'), 'a');
    const child = spawn('tgtd', ['-f', '-C', String(lab.tgtdControlPort), '--iscsi', `portal=${lab.portal}`], { detached: true, stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    child.unref();
    restartedTgtd = child.pid;
    const tgtadm = new TgtadmClient(runner, lab.tgtdControlPort);
    await eventually(async () => tgtadm.showTargets(signal).then(() => true, () => false), 'the new tgtd to answer');
    expect(await tgtadm.showTargets(signal)).toEqual([]);
    expect((await readCapacity(lab, h1, volIqn, login1)).exitCode).not.toBe(0);

    const orphanIqn = `${lab.iqnPrefix}:${newId('volume')}`;
    const foreignIqn = `iqn.2024-01.lab.other:keep-${lab.runId}`;
    await tgtadm.run(['--op', 'new', '--mode', 'target', '--tid', '40', '-T', orphanIqn], { signal });
    await tgtadm.run(['--op', 'new', '--mode', 'target', '--tid', '41', '-T', foreignIqn], { signal });

    const c2 = chapFor('ro2');
    const desired = [
      { handle: vol, grants: [{ host: hostOf(h1), mode: 'rw' as const, chap: chap1 }] },
      { handle: roVol, grants: [{ host: hostOf(h2), mode: 'ro' as const, chap: c2 }] },
    ];
    // The export watch's cheap check names what the restarted tgtd lost (orphans are not its business).
    const expected = desired.map((d) => ({ handle: d.handle, hosts: d.grants.map((g) => g.host) }));
    expect(await driver.exports.drift(expected, signal)).toEqual({ missing: [`target:${String(vol.volumeId)}`, `target:${String(roVol.volumeId)}`] });
    const report = await driver.exports.reconcile(desired, signal);
    expect(report.restored).toEqual(expect.arrayContaining([`target:${String(vol.volumeId)}`, `acl:${String(vol.volumeId)}:${h1.address}`, `account:${String(vol.volumeId)}:${login1.user}`, `target:${String(roVol.volumeId)}`]));
    expect(report.removed).toEqual([`target:${orphanIqn.split(':').at(-1) ?? ''}`]);

    const targets = await tgtadm.showTargets(signal);
    expect(targets.map((t) => t.iqn)).toContain(foreignIqn);
    expect(targets.map((t) => t.iqn)).not.toContain(orphanIqn);
    expect(targets.find((t) => t.iqn === String(roVol.iqn))?.luns.find((l) => l.lun === 1)).toMatchObject({ readonly: true, thin: true });
    expect((await readCapacity(lab, h1, volIqn, login1)).stdout.trim()).toBe(String(96 * MiB));
    expect((await readCapacity(lab, h2, String(roVol.iqn), { user: `${c2.user}.${String(roVol.volumeId)}`, secret: c2.secret })).stdout.trim()).toBe(String(32 * MiB));
    // The data survived in the backing file.
    const io = await inHost(lab, h1, 'qemu-io', ['-f', 'raw', '-c', 'read -P 0xab 0 4k', iscsiUrl(lab, volIqn, login1)], [login1.secret]);
    expect(io.stdout).toContain('read 4096/4096 bytes at offset 0');

    // h1's old ro grant on roVol is gone from the desired state: its ACL was not restored.
    expect((await readCapacity(lab, h1, String(roVol.iqn), chapFor('ro1'))).exitCode).not.toBe(0);
    expect(await driver.exports.reconcile(desired, signal)).toEqual({ restored: [], removed: [] });
    expect(await driver.exports.drift(expected, signal)).toEqual({ missing: [] });

    // Drift on our own target (an ACL and an account nobody granted) is removed, and the session
    // that came in through the stray ACL is dropped.
    const volTarget = (await tgtadm.showTargets(signal)).find((t) => t.iqn === volIqn);
    const stray = chapFor('stray');
    await tgtadm.run(['--op', 'bind', '--mode', 'target', '--tid', String(volTarget?.tid), '-I', h3.address], { signal });
    await tgtadm.run(['--op', 'new', '--mode', 'account', '--user', stray.user, '--password', stray.secret], { signal, secrets: [stray.secret] });
    await tgtadm.run(['--op', 'bind', '--mode', 'account', '--tid', String(volTarget?.tid), '--user', stray.user], { signal });
    expect((await readCapacity(lab, h3, volIqn, stray)).exitCode).toBe(0);
    const drift = await driver.exports.reconcile(desired, signal);
    expect(drift).toEqual({ restored: [], removed: [`acl:${String(vol.volumeId)}:${h3.address}`, `account:${String(vol.volumeId)}:${stray.user}`] });
    expect((await readCapacity(lab, h3, volIqn, stray)).exitCode).not.toBe(0);
    expect((await readCapacity(lab, h1, volIqn, login1)).exitCode).toBe(0);
  });

  it('creates past a tid another tgtadm user took, finishes a target a crash left without its LUN, and re-keys a leftover account on grant', async () => {
    const tgtadm = new TgtadmClient(runner, lab.tgtdControlPort);
    const tids = async (): Promise<number[]> => (await tgtadm.showTargets(signal)).map((t) => t.tid);
    // A foreign target on the tid the next create would take: the create still gets a target of its own.
    const foreign = Math.max(0, ...(await tids())) + 1;
    await tgtadm.run(['--op', 'new', '--mode', 'target', '--tid', String(foreign), '-T', 'iqn.2024-01.lab.other:foreign'], { signal });
    const a = await driver.createVolume({ id: newId('volume'), name: 'hint-a', sizeBytes: 8 * MiB }, signal);
    const ta = (await tgtadm.showTargets(signal)).find((t) => t.iqn === String(a.iqn));
    expect(ta?.tid).not.toBe(foreign);
    expect(ta?.luns.find((l) => l.lun === 1)).toMatchObject({ thin: true, backingPath: driver.data.locate(a).path });
    expect((await tgtadm.showTargets(signal)).find((t) => t.tid === foreign)?.iqn).toBe('iqn.2024-01.lab.other:foreign');

    // A size the backing store refuses: the target made for it while the file was being made is removed again.
    const refused = newId('volume');
    await expect(driver.createVolume({ id: refused, name: 'hint-bad', sizeBytes: 0 }, signal)).rejects.toMatchObject({ code: 'INVALID_SIZE' });
    expect((await tgtadm.showTargets(signal)).map((t) => t.iqn)).not.toContain(`${lab.iqnPrefix}:${refused}`);

    // A create killed between `new target` and `new logicalunit`: run again, it adds the LUN to the target it made.
    const id = newId('volume');
    const half = Math.max(0, ...(await tids())) + 1;
    await tgtadm.run(['--op', 'new', '--mode', 'target', '--tid', String(half), '-T', `${lab.iqnPrefix}:${id}`], { signal });
    const b = await driver.createVolume({ id, name: 'hint-b', sizeBytes: 8 * MiB }, signal);
    const tb = (await tgtadm.showTargets(signal)).filter((t) => t.iqn === String(b.iqn));
    expect(tb.map((t) => t.tid)).toEqual([half]);
    expect(tb[0]?.luns.find((l) => l.lun === 1)).toMatchObject({ thin: true, backingPath: driver.data.locate(b).path });

    // An account left with another secret (a grant killed before its ledger said so): the grant sets its own secret.
    const c = chapFor('left');
    const user = `${c.user}.${id}`;
    await tgtadm.run(['--op', 'new', '--mode', 'account', '--user', user, '--password', 'OldSecret123456'], { signal, secrets: ['OldSecret123456'] });
    const login = loginOf(await driver.access.grant(b, { host: hostOf(h2), mode: 'rw', chap: c }, signal));
    expect(login.user).toBe(user);
    expect((await readCapacity(lab, h2, String(b.iqn), login)).exitCode).toBe(0);
    expect((await readCapacity(lab, h2, String(b.iqn), { user, secret: 'OldSecret123456' })).exitCode).not.toBe(0);
    await driver.access.revoke(b, hostOf(h2), signal);
    await driver.deleteVolume(a, signal);
    await driver.deleteVolume(b, signal);
    await tgtadm.run(['--op', 'delete', '--mode', 'target', '--tid', String(foreign), '--force'], { signal });
  });

  it('deletes a volume with an open session (force) and is idempotent', async () => {
    const child = spawn('ip', ['netns', 'exec', h1.netns, 'qemu-io', '-f', 'raw', iscsiUrl(lab, volIqn, login1)], { stdio: ['pipe', 'ignore', 'ignore'] });
    children.push(child);
    const tgtadm = new TgtadmClient(runner, lab.tgtdControlPort);
    await eventually(async () => ((await tgtadm.showTargets(signal)).find((t) => t.iqn === volIqn)?.sessions.length ?? 0) > 0, 'a session');
    const file = driver.data.locate(vol).path;
    await driver.deleteVolume(vol, signal);
    await driver.deleteVolume(vol, signal);
    expect((await tgtadm.showTargets(signal)).map((t) => t.iqn)).not.toContain(volIqn);
    await expect(open(file, 'r')).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await driver.listVolumes(signal)).map((v) => v.id)).not.toContain(vol.volumeId);
    expect(await tgtadm.showAccounts(signal)).not.toContain(login1.user);
    child.stdin?.end();
  });
});
