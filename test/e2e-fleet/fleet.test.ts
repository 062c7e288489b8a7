import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeTcpPort } from '../lab/ports.js';
import { startFleet, type Fleet } from '../lab/fleet.js';
import type { LabHost, LabStorageNode } from '../lab/lab.js';
import { iscsiUrl, readCapacity, writeAndVerify, readsPattern, type Connection } from '../e2e-iscsi/e2e-kit.js';
import { hasDisk, holdsPattern, pidAlive, pluggedIscsi, readCapacityAs, startHostVm, stwNodes, vmReadBack, vmWrite, type HostVm } from '../e2e-hosts/hosts-kit.js';
import { pollUntil, REPO_ROOT } from '../helpers/server.js';

/**
 * Issue 10, "Done when": a fleet of two storage nodes (sn1, sn2: each its own netns, mount
 * namespace, btrfs on a loop device and tgtd) and two hypervisors (h1, h2: namespaces with a real
 * `stowage agent` and QEMU VMs) run from one control plane (TLS on, on the lab bridge), driven only
 * through the built CLI as a user does (`-o json` for the assertions). One fleet for the file: the
 * tests run in order and build on each other.
 */

const MiB = 1024 * 1024;
const ANY_EXIT = Array.from({ length: 256 }, (_, i) => i);

interface NodeView { name: string; state: string; backends: string[]; keyFingerprint: string | null; inFlight: number | null }
interface BackendView { name: string; state: string; node: string | null; cost: number; tags: string[]; capacity: { totalBytes: number; freeBytes: number } | null; capabilities: string[] }
interface VolumeView { id: string; name: string; state: string; backendName: string | null; placement: unknown }
interface AttachmentView { id: string; state: string; hostName: string; volumeName: string }
interface MigrationView { id: string; state: string }
interface OperationView { id: string; kind: string; state: string; targetId: string; stepsDone: { name: string; note?: string }[] }

describe('a fleet: two storage nodes and two hypervisors run from one control plane with the CLI', () => {
  let fleet: Fleet;
  let sn1: LabStorageNode;
  let sn2: LabStorageNode;
  let h1: LabHost;
  let h2: LabHost;
  let dir: string;
  const agentPids: number[] = [];
  const vms: HostVm[] = [];
  const vols: Record<string, VolumeView> = {};

  const json = <T>(args: readonly string[]): Promise<T> => fleet.cliJson<T>(args);
  const vmDir = (h: LabHost): string => join(dir, `${h.name}-vms`);

  const tokenFile = (h: LabHost): string => join(dir, `${h.name}.token`);

  /** `host create`: registers the hypervisor and prints its agent's one-time token, kept in a 0600 file. */
  const createHost = async (h: LabHost): Promise<void> => {
    const created = await json<{ name: string; enrollment: { token: string } }>(['host', 'create', h.name, '--address', h.address, '--initiator-name', h.initiatorName]);
    writeFileSync(tokenFile(h), `${created.enrollment.token}\n`, { mode: 0o600 });
  };

  /** `stowage agent --enroll-file` inside the host's namespace, against the fleet's HTTPS API. */
  const startAgent = (h: LabHost): void => {
    mkdirSync(vmDir(h), { recursive: true, mode: 0o700 });
    const fd = openSync(join(dir, `agent-${h.name}.log`), 'a', 0o600);
    // --heartbeat 500: the host is up at once (the agent then beats at the server's interval).
    const argv = [process.execPath, join(REPO_ROOT, 'bin', 'stowage.js'), 'agent', '--api', fleet.apiUrl(), '--host', h.name, '--vm-dir', vmDir(h),
      '--address', h.address, '--initiator-name', h.initiatorName, '--enroll-file', tokenFile(h), '--state-dir', join(dir, `agent-state-${h.name}`), '--heartbeat', '500'];
    const child = spawn('ip', ['netns', 'exec', h.netns, ...argv], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir }, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    if (child.pid === undefined) throw new Error(`could not start the agent of ${h.name}`);
    agentPids.push(child.pid);
    fleet.lab.adoptProcess(child.pid, `--host ${h.name} --vm-dir`);
  };

  const grantOf = (volume: string, host: string): Promise<Connection> => json<Connection>(['volume', 'grant', volume, '--host', host]);

  /** The whole volume as `h` reads it over iSCSI (`qemu-img convert` from inside its namespace). */
  const readWhole = async (h: LabHost, c: Connection, name: string): Promise<Buffer> => {
    const out = join(dir, `${name}-${h.name}.raw`);
    const r = await fleet.lab.hostExec(h, 'qemu-img', ['convert', '-f', 'raw', '-O', 'raw', iscsiUrl(c), out], { okExitCodes: ANY_EXIT, timeoutMs: 120_000, secrets: [c.chapSecret ?? ''] });
    if (r.exitCode !== 0) throw new Error(`qemu-img convert of ${name} from ${h.name} failed: ${r.stderr}`);
    const data = readFileSync(out);
    rmSync(out, { force: true });
    return data;
  };

  beforeAll(async () => {
    // No `local` backend: the fleet's two backends are the whole pool, so "cheapest" means one of them.
    // Operation poll 50 ms (default 1 s) so the many CLI waits of this file do not add seconds each; no figure here depends on it.
    fleet = await startFleet({ storageNodes: 2, hosts: 2, serverEnv: { STOWAGE_DEFAULT_BACKEND: 'false', STOWAGE_OPERATION_POLL_MS: '50' } });
    [sn1, sn2] = [fleet.lab.storageNode('sn1'), fleet.lab.storageNode('sn2')];
    [h1, h2] = [fleet.lab.host('h1'), fleet.lab.host('h2')];
    dir = join(fleet.lab.runDir, 'fleet-test');
    mkdirSync(dir, { mode: 0o700 });
  }, 180_000);

  afterAll(async () => {
    for (const v of vms) await v.stop().catch(() => undefined);
    for (const pid of agentPids) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    await fleet?.stop();
  }, 120_000);

  it('1. enrolls sn1 and sn2 (`node create` + `node run` in each namespace): both ready; a tgt backend on each, probed through its node', async () => {
    for (const n of [sn1, sn2]) {
      const t0 = Date.now();
      await fleet.startNodeAgent(n);
      console.info(`[fleet] ${n.name}: node create → node run → ready in ${String(Date.now() - t0)} ms`);
    }
    const nodes = await json<NodeView[]>(['node', 'list']);
    expect(nodes.map((n) => `${n.name}:${n.state}`).sort()).toEqual(['sn1:ready', 'sn2:ready']);
    for (const n of nodes) expect(n.keyFingerprint).toMatch(/^sha256:/);

    // Each node's tgtd is on -C 0 in its own mount namespace; the btrfs lives only there.
    const driver = (n: LabStorageNode): string => `tgt://${n.portal}?backing=btrfs://${n.dataDir}&control=${String(n.tgtdControlPort)}`;
    const t0 = Date.now();
    await json(['backend', 'create', 'fast', '--node', 'sn2', '--driver', driver(sn2), '--cost', '3', '--tag', 'ssd']);
    await json(['backend', 'create', 'slow', '--node', 'sn1', '--driver', driver(sn1), '--cost', '1', '--tag', 'hdd']);
    const backends = await pollUntil('both backends probed', async () => {
      const list = await json<BackendView[]>(['backend', 'list']);
      return list.length === 2 && list.every((b) => b.capacity !== null && b.capabilities.length > 0) ? list : undefined;
    }, 60_000, 200);
    console.info(`[fleet] two backends created and probed through their nodes in ${String(Date.now() - t0)} ms`);
    const by = Object.fromEntries(backends.map((b) => [b.name, b]));
    expect(by.fast).toMatchObject({ state: 'enabled', node: 'sn2', cost: 3, tags: ['ssd'] });
    expect(by.slow).toMatchObject({ state: 'enabled', node: 'sn1', cost: 1, tags: ['hdd'] });
    // The capacity is the node's own 1 GiB btrfs (invisible from the control plane's namespace), not the root filesystem.
    for (const b of [by.fast, by.slow]) {
      expect(b?.capacity?.totalBytes).toBeGreaterThan(500 * MiB);
      expect(b?.capacity?.totalBytes).toBeLessThanOrEqual(1024 * MiB);
    }
    expect(b2s(readFileSync('/proc/self/mounts')).includes(` ${sn1.dataDir} `)).toBe(false);
    const after = await json<NodeView[]>(['node', 'list']);
    expect(Object.fromEntries(after.map((n) => [n.name, n.backends]))).toEqual({ sn1: ['slow'], sn2: ['fast'] });
  }, 240_000);

  it('2. places volumes across both nodes by tag and cost; `volume show` explains the placement', async () => {
    vols.a = await json<VolumeView>(['volume', 'create', 'a', '--size', '64M', '--tag', 'ssd']);
    vols.b = await json<VolumeView>(['volume', 'create', 'b', '--size', '64M', '--tag', 'hdd']);
    vols.u = await json<VolumeView>(['volume', 'create', 'u', '--size', '16M']);
    expect(Object.fromEntries(Object.values(vols).map((v) => [v.name, `${v.backendName ?? '-'}:${v.state}`]))).toEqual({ a: 'fast:available', b: 'slow:available', u: 'slow:available' });
    const shown = await json<VolumeView>(['volume', 'show', 'u']);
    expect(shown.placement).not.toBeNull();
    const text = await fleet.cli(['volume', 'show', 'u']);
    expect(text.code).toBe(0);
    const placement = text.stdout.slice(text.stdout.indexOf('Placement'));
    console.info(`[fleet] volume show u:\n${placement}`);
    expect(placement).toMatch(/slow/);
    // The LUN files are on the node's filesystem, under its mount namespace.
    const ls = await fleet.lab.runInNode(sn2, ['ls', '-R', sn2.dataDir]);
    expect(ls.stdout).toContain(vols.a?.id ?? '?');
  }, 120_000);

  it('3. grants hypervisors access to LUNs on each node: real CHAP logins and I/O from h1; h2 without a grant is refused; revoke drops it', async () => {
    await createHost(h1);
    await createHost(h2);
    const ca = await grantOf('a', 'h1');
    const cb = await grantOf('b', 'h1');
    expect(ca.portal).toBe(sn2.portal);
    expect(cb.portal).toBe(sn1.portal);
    for (const c of [ca, cb]) {
      const cap = await readCapacity(fleet.lab, h1, c);
      expect(cap.exitCode).toBe(0);
      expect(cap.stdout).toContain(String(64 * MiB));
      const inq = await fleet.lab.hostExec(h1, 'iscsi-inq', ['-i', h1.initiatorName, `iscsi://${c.portal ?? ''}/${c.iqn ?? ''}/${String(c.lun)}`], {
        okExitCodes: ANY_EXIT, timeoutMs: 60_000, env: { LIBISCSI_CHAP_USERNAME: c.chapUser ?? '', LIBISCSI_CHAP_PASSWORD: c.chapSecret ?? '' }, secrets: [c.chapSecret ?? ''],
      });
      expect(inq.exitCode).toBe(0);
    }
    await writeAndVerify(fleet.lab, h1, ca, 0x5a, 0, MiB);
    await writeAndVerify(fleet.lab, h1, ca, 0xc3, 40 * MiB, 256 * 1024);
    await writeAndVerify(fleet.lab, h1, cb, 0x77, 0, MiB);
    // h2 has no grant: even h1's credentials do not get it in, on either node.
    for (const c of [ca, cb]) expect((await readCapacity(fleet.lab, h2, c)).exitCode).not.toBe(0);
    // Revoke on sn1's LUN: h1 is out there, still in on sn2's.
    await json(['volume', 'revoke', 'b', '--host', 'h1']);
    const refused = await readCapacity(fleet.lab, h1, cb);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stdout + refused.stderr).toMatch(/Target not found|Login Failed|failed/i);
    expect((await readCapacity(fleet.lab, h1, ca)).exitCode).toBe(0);
  }, 180_000);

  it('4. attaches disks on both nodes to a VM on h1, migrates it live to h2, then fences h2: h2 cannot log in on either node', async () => {
    const src = await startHostVm({ lab: fleet.lab, host: h1, name: 'vm1', vmDir: vmDir(h1), testDir: join(dir, 'h1-test') });
    vms.push(src);
    const dst = await startHostVm({ lab: fleet.lab, host: h2, name: 'vm1', vmDir: vmDir(h2), testDir: join(dir, 'h2-test'), incoming: true });
    vms.push(dst);
    const t0 = Date.now();
    startAgent(h1);
    startAgent(h2);
    await pollUntil('h1 and h2 up', async () => {
      const hosts = await json<{ name: string; state: string }[]>(['host', 'list']);
      return hosts.filter((h) => h.state === 'up').length === 2 ? true : undefined;
    }, 60_000, 200);
    console.info(`[fleet] two agents enrolled (agent --enroll-file with host create's token) and up in ${String(Date.now() - t0)} ms`);

    vols.d1 = await json<VolumeView>(['volume', 'create', 'd1', '--size', '32M', '--tag', 'ssd']);
    vols.d2 = await json<VolumeView>(['volume', 'create', 'd2', '--size', '16M', '--tag', 'hdd']);
    const d1 = vols.d1.id;
    const d2 = vols.d2.id;
    expect([vols.d1.backendName, vols.d2.backendName]).toEqual(['fast', 'slow']);
    for (const v of ['d1', 'd2']) {
      const t = Date.now();
      const att = await json<AttachmentView>(['volume', 'attach', v, '--host', 'h1', '--instance', 'vm1']);
      expect(att.state).toBe('attached');
      console.info(`[fleet] volume attach ${v} --host h1 → attached in ${String(Date.now() - t)} ms`);
    }
    expect(await hasDisk(src, d1)).toBe(true);
    expect(await hasDisk(src, d2)).toBe(true);
    expect((await pluggedIscsi(src, d1)).portal).toBe(sn2.portal);
    expect((await pluggedIscsi(src, d2)).portal).toBe(sn1.portal);
    await src.monitor.cont();
    await vmWrite(src, d1, 0xa7, 0, 256 * 1024);
    await vmWrite(src, d2, 0x3c, MiB, 64 * 1024);

    const tm = Date.now();
    const started = await json<MigrationView>(['migration', 'start', '--instance', 'vm1', '--from', 'h1', '--to', 'h2']);
    expect(started.state).toBe('ready');
    expect(await hasDisk(dst, d1)).toBe(true);
    expect(await hasDisk(dst, d2)).toBe(true);
    const uri = `tcp:${h2.address}:${String(await freeTcpPort('127.0.0.1'))}`;
    const resumed = dst.monitor.client.eventWaiter('RESUME');
    try {
      await dst.monitor.migrateIncoming(uri);
      await src.monitor.migrate(uri);
      expect((await src.monitor.waitMigration({ timeoutMs: 120_000 })).status).toBe('completed');
      await resumed.wait(60_000);
    } finally {
      resumed.dispose();
    }
    const oldLogin = await pluggedIscsi(src, d1);
    const completed = await json<MigrationView>(['migration', 'complete', '--instance', 'vm1', '--from', 'h1', '--to', 'h2']);
    expect(completed.state).toBe('completed');
    console.info(`[fleet] migration start → QEMU move → complete (disks on sn1 and sn2) in ${String(Date.now() - tm)} ms`);
    const live = (await json<AttachmentView[]>(['attachment', 'list'])).filter((a) => a.state !== 'gone');
    expect(live.map((a) => `${a.volumeName}@${a.hostName}:${a.state}`).sort()).toEqual(['d1@h2:attached', 'd2@h2:attached']);
    expect((await readCapacityAs(fleet.lab, h1, oldLogin)).exitCode).not.toBe(0);
    await pollUntil('h1\'s agent to unplug both disks', async () => ((await stwNodes(src)).length === 0 ? true : undefined), 60_000);
    expect(holdsPattern(await vmReadBack(dst, d1, join(dir, 'scratch')), 0xa7, 0, 256 * 1024)).toBe(true);
    expect(holdsPattern(await vmReadBack(dst, d2, join(dir, 'scratch')), 0x3c, MiB, 64 * 1024)).toBe(true);

    // Fence h2: its logins on both nodes stop working.
    const logins = [await pluggedIscsi(dst, d1), await pluggedIscsi(dst, d2)];
    expect(logins.map((l) => l.portal)).toEqual([sn2.portal, sn1.portal]);
    for (const l of logins) expect((await readCapacityAs(fleet.lab, h2, l)).exitCode).toBe(0);
    const tf = Date.now();
    const fenced = await json<{ host: { state: string }; revokedGrants: unknown[] }>(['host', 'fence', 'h2', '--yes']);
    console.info(`[fleet] host fence h2 (grants on sn1 and sn2) in ${String(Date.now() - tf)} ms`);
    expect(fenced.host.state).toBe('fenced');
    expect(fenced.revokedGrants.length).toBe(2);
    for (const l of logins) {
      const r = await readCapacityAs(fleet.lab, h2, l);
      expect(r.exitCode).not.toBe(0);
    }
  }, 360_000);

  it('5. a snapshot and an offloaded clone on one node; a clone across nodes streams sn2 → sn1, byte-exact', async () => {
    await json(['snapshot', 'create', 'a', '--name', 's1']);
    const t0 = Date.now();
    const snapClone = await json<VolumeView>(['volume', 'create', 'a-s1', '--from-snapshot', 's1']);
    console.info(`[fleet] offloaded clone of a snapshot on sn2 in ${String(Date.now() - t0)} ms`);
    expect(snapClone.backendName).toBe('fast');
    const t1 = Date.now();
    const c = await json<VolumeView>(['volume', 'create', 'c', '--from-volume', 'a', '--backend', 'slow']);
    console.info(`[fleet] cross-node clone of 64 MiB (sn2 → sn1) in ${String(Date.now() - t1)} ms`);
    expect(c).toMatchObject({ backendName: 'slow', state: 'available' });

    const ops = await json<OperationView[] | { items: OperationView[] }>(['operation', 'list']);
    const items = Array.isArray(ops) ? ops : ops.items;
    const noteOf = (id: string): string => (items.find((o) => o.kind === 'volume.create' && o.targetId === id)?.stepsDone ?? []).map((s) => s.note ?? '').join(' ');
    console.info(`[fleet] clone notes: a-s1: ${noteOf(snapClone.id)} | c: ${noteOf(c.id)}`);
    expect(noteOf(c.id)).toMatch(/streamed copy/);
    expect(noteOf(snapClone.id)).not.toMatch(/streamed copy/);

    // Read a (on sn2) and c (on sn1) whole from h1 and compare.
    const ca = await grantOf('a', 'h1');
    const cc = await grantOf('c', 'h1');
    expect(cc.portal).toBe(sn1.portal);
    const [da, dc] = [await readWhole(h1, ca, 'a'), await readWhole(h1, cc, 'c')];
    expect(da.length).toBe(64 * MiB);
    expect(dc.equals(da)).toBe(true);
    expect(holdsPattern(dc, 0x5a, 0, MiB)).toBe(true);
    expect(holdsPattern(dc, 0xc3, 40 * MiB, 256 * 1024)).toBe(true);
    // The snapshot clone holds what a held when s1 was taken.
    const cs = await grantOf('a-s1', 'h1');
    expect(await readsPattern(fleet.lab, h1, cs, 0x5a, 0, MiB)).toBe(true);
  }, 240_000);

  it('6. `node list` / `node top --once` / `node drain`: a drained node gets no new volumes, what it holds keeps serving', async () => {
    const top = await fleet.cli(['node', 'top', '--once']);
    expect(top.code).toBe(0);
    console.info(`[fleet] node top --once:\n${top.stdout}`);
    expect(top.stdout).toMatch(/sn1\s+ready/);
    // Heartbeats report what each node is running: a number once heard from (a quiet fleet runs few calls).
    const counts = await pollUntil('in-flight counts from heartbeats', async () => {
      const ns = await json<NodeView[]>(['node', 'list']);
      return ns.every((n) => typeof n.inFlight === 'number') ? ns.map((n) => n.inFlight) : undefined;
    }, 30_000);
    for (const c of counts) expect(c).toBeGreaterThanOrEqual(0);
    const drained = await json<NodeView & { adminState: string }>(['node', 'drain', 'sn1']);
    expect(drained.adminState).toBe('draining');
    const v = await json<VolumeView>(['volume', 'create', 'after-drain', '--size', '16M']);
    expect(v.backendName).toBe('fast');
    const cb = await grantOf('b', 'h1');
    expect((await readCapacity(fleet.lab, h1, cb)).exitCode).toBe(0);
  }, 120_000);
});

function b2s(b: Buffer): string {
  return b.toString('utf8');
}
