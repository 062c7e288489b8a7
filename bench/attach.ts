/**
 * Attach and live-migration benchmarks on the real lab (root; `npx tsx bench/attach.ts`). Prints
 * figures, asserts nothing. Needs `npm run build` (the server and agents run from dist/ and bin/).
 *
 * 1. Attach latency: `POST /v1/volumes/:v/attachments?wait=true` through the control plane and a
 *    real agent, until the device shows in the VM's `query-block`, versus the raw commands it
 *    issues run directly (tgtadm target + LUN + address ACL + CHAP account, then QMP object-add +
 *    blockdev-add ×2 + device_add).
 * 2. Live migration of a VM with one iSCSI disk: the QEMU migration alone with both sides attached
 *    by hand beforehand, versus Stowage's storage handoff around it (start → migrate → complete).
 */
import { existsSync, mkdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { newId } from '../src/core/ids.js';
import { makeTempDir, pollUntil } from '../test/helpers/server.js';
import { startLab, type Lab, type LabHost } from '../test/lab/lab.js';
import { freeTcpPort } from '../test/lab/ports.js';
import {
  MiB, createVolume, hasDisk, registerTgtBackend, startAgent, startControlPlane, startHostVm, waitHostsUp,
  type AgentProcess, type ControlPlane, type HostVm,
} from '../test/e2e-hosts/hosts-kit.js';

const ATTACH_ROUNDS = 10;
const MIGRATION_ROUNDS = 5;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

function row(label: string, ms: readonly number[]): void {
  console.log(`${label.padEnd(58)} median ${median(ms).toFixed(1).padStart(8)} ms   (${ms.map((m) => m.toFixed(0)).join(', ')})`);
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

interface Env {
  lab: Lab;
  dir: string;
  cp: ControlPlane;
  h1: LabHost;
  h2: LabHost;
  vms: HostVm[];
  agents: AgentProcess[];
}

const vmDir = (env: Env, h: LabHost): string => join(env.dir, `${h.name}-vms`);

/** Raw attach: the tgtadm and QMP commands the driver and the agent issue, run directly. */
async function rawAttach(env: Env, vm: HostVm, hosts: readonly LabHost[], tid: number, volumeId: string, lunPath: string): Promise<{ iqn: string; user: string; secret: string }> {
  const iqn = `${env.lab.iqnPrefix}:bench-${String(tid)}`;
  const user = `bench${String(tid)}`;
  const secret = randomBytes(12).toString('hex');
  const t = String(tid);
  await env.lab.tgtadm(['--op', 'new', '--mode', 'target', '--tid', t, '-T', iqn]);
  await env.lab.tgtadm(['--op', 'new', '--mode', 'logicalunit', '--tid', t, '--lun', '1', '-b', lunPath]);
  for (const h of hosts) await env.lab.tgtadm(['--op', 'bind', '--mode', 'target', '--tid', t, '-I', h.address]);
  await env.lab.tgtadm(['--op', 'new', '--mode', 'account', '--user', user, '--password', secret], { secrets: [secret] });
  await env.lab.tgtadm(['--op', 'bind', '--mode', 'account', '--tid', t, '--user', user]);
  await qmpAttach(vm, volumeId, iqn, user, secret, env.lab.portal);
  return { iqn, user, secret };
}

async function qmpAttach(vm: HostVm, volumeId: string, iqn: string, user: string, secret: string, portal: string): Promise<void> {
  const c = vm.monitor.client;
  await c.execute('object-add', { 'qom-type': 'secret', id: `stw-${volumeId}-sec`, data: secret, format: 'raw' }, { secrets: [secret] });
  await c.execute('blockdev-add', { driver: 'iscsi', 'node-name': `stw-${volumeId}-p`, transport: 'tcp', portal, target: iqn, lun: 1, 'initiator-name': vm.host.initiatorName, user, 'password-secret': `stw-${volumeId}-sec` });
  await c.execute('blockdev-add', { driver: 'raw', 'node-name': `stw-${volumeId}`, file: `stw-${volumeId}-p` });
  await c.execute('device_add', { driver: 'scsi-hd', id: `stw-dev-${volumeId}`, drive: `stw-${volumeId}`, bus: 'scsi0.0' });
  await pollUntil('raw attach visible', async () => ((await hasDisk(vm, volumeId)) ? true : undefined), 30_000, 5);
}

async function rawDetach(env: Env, vm: HostVm, tid: number, volumeId: string, user: string): Promise<void> {
  const c = vm.monitor.client;
  const gone = c.eventWaiter('DEVICE_DELETED', (e) => e.data.device === `stw-dev-${volumeId}`);
  try {
    await c.execute('device_del', { id: `stw-dev-${volumeId}` });
    await gone.wait(30_000);
  } finally {
    gone.dispose();
  }
  // The host agent in this lab removes stw- nodes left without their device as soon as it sees
  // them, so each of these may find its node already gone: that is the same end state.
  const gone2 = (err: unknown): void => { if (!/Failed to find node|not found/i.test(String((err as { desc?: string }).desc ?? err))) throw err; };
  await c.execute('blockdev-del', { 'node-name': `stw-${volumeId}` }).catch(gone2);
  await c.execute('blockdev-del', { 'node-name': `stw-${volumeId}-p` }).catch(gone2);
  await c.execute('object-del', { id: `stw-${volumeId}-sec` }).catch(gone2);
  await env.lab.tgtadm(['--op', 'delete', '--mode', 'target', '--tid', String(tid), '--force']);
  await env.lab.tgtadm(['--op', 'delete', '--mode', 'account', '--user', user]);
}

async function attachBench(env: Env): Promise<void> {
  const vm = await startHostVm({ lab: env.lab, host: env.h1, name: 'bvm', vmDir: vmDir(env, env.h1), testDir: join(env.dir, 'h1-test') });
  env.vms.push(vm);
  await createVolume(env.cp.api, 'bdisk', 64 * MiB, 'san');
  const volumeId = (await env.cp.api.ok<{ id: string }>('GET', '/v1/volumes/bdisk', 200)).id;
  const viaStowage: number[] = [];
  const detachStowage: number[] = [];
  for (let i = 0; i < ATTACH_ROUNDS; i++) {
    viaStowage.push(await timed(async () => {
      await env.cp.api.ok('POST', '/v1/volumes/bdisk/attachments?wait=true', 200, { body: { host: env.h1.name, instance: 'bvm' } });
      await pollUntil('attach visible', async () => ((await hasDisk(vm, volumeId)) ? true : undefined), 30_000, 5);
    }));
    detachStowage.push(await timed(async () => {
      await env.cp.api.ok('POST', '/v1/volumes/bdisk/detach?wait=true', 200, { body: {} });
      await pollUntil('detach visible', async () => ((await hasDisk(vm, volumeId)) ? undefined : true), 30_000, 5);
    }));
  }
  const raw: number[] = [];
  const rawDetachMs: number[] = [];
  const lunDir = join(env.lab.btrfsDir, 'bench-raw');
  mkdirSync(lunDir, { recursive: true });
  const lunPath = join(lunDir, 'lun.raw');
  writeFileSync(lunPath, '');
  truncateSync(lunPath, 64 * MiB);
  const rawId = newId('volume');
  for (let i = 0; i < ATTACH_ROUNDS; i++) {
    const tid = 900 + i;
    let user = '';
    raw.push(await timed(async () => { user = (await rawAttach(env, vm, [env.h1], tid, rawId, lunPath)).user; }));
    rawDetachMs.push(await timed(() => rawDetach(env, vm, tid, rawId, user)));
  }
  console.log(`\nAttach of a 64 MiB iSCSI volume (tgt over btrfs) into a running QEMU in a namespace host (${String(ATTACH_ROUNDS)} rounds):`);
  row('Stowage: POST attach?wait=true → device in query-block', viaStowage);
  row('raw: tgtadm ×5 + QMP object-add/blockdev-add ×2/device_add', raw);
  console.log(`ratio Stowage / raw: ${(median(viaStowage) / median(raw)).toFixed(2)}x`);
  row('Stowage: POST detach?wait=true → device gone', detachStowage);
  row('raw: device_del/blockdev-del ×2/object-del + tgtadm ×2', rawDetachMs);
  console.log(`ratio Stowage / raw: ${(median(detachStowage) / median(rawDetachMs)).toFixed(2)}x`);
}

/** Migrates `src` (running) into `dst` (-incoming) and waits until the destination runs. */
async function qemuMigrate(src: HostVm, dst: HostVm, to: LabHost): Promise<void> {
  const uri = `tcp:${to.address}:${String(await freeTcpPort('127.0.0.1'))}`;
  const resumed = dst.monitor.client.eventWaiter('RESUME');
  try {
    await dst.monitor.migrateIncoming(uri);
    await src.monitor.migrate(uri);
    await src.monitor.waitMigration({ timeoutMs: 120_000 });
    await resumed.wait(60_000);
  } finally {
    resumed.dispose();
  }
}

async function stopVm(env: Env, vm: HostVm): Promise<void> {
  await vm.stop();
  env.vms.splice(env.vms.indexOf(vm), 1);
  if (existsSync(vm.agentSocket)) rmSync(vm.agentSocket, { force: true });
  if (existsSync(vm.testSocket)) rmSync(vm.testSocket, { force: true });
}

async function migrationBench(env: Env): Promise<void> {
  const bare: number[] = [];
  const lunDir = join(env.lab.btrfsDir, 'bench-mig');
  mkdirSync(lunDir, { recursive: true });
  for (let i = 0; i < MIGRATION_ROUNDS; i++) {
    const name = `raw${String(i)}`;
    // Outside the agents' directories: these VMs are driven by hand only.
    const src = await startHostVm({ lab: env.lab, host: env.h1, name, vmDir: join(env.dir, 'raw-vms-h1'), testDir: join(env.dir, 'raw-test-h1') });
    const dst = await startHostVm({ lab: env.lab, host: env.h2, name, vmDir: join(env.dir, 'raw-vms-h2'), testDir: join(env.dir, 'raw-test-h2'), incoming: true });
    env.vms.push(src, dst);
    const lunPath = join(lunDir, `${name}.raw`);
    writeFileSync(lunPath, '');
    truncateSync(lunPath, 64 * MiB);
    const id = newId('volume');
    const tid = 950 + i;
    const t = await rawAttach(env, src, [env.h1, env.h2], tid, id, lunPath);
    await qmpAttach(dst, id, t.iqn, t.user, t.secret, env.lab.portal);
    await src.monitor.cont();
    bare.push(await timed(() => qemuMigrate(src, dst, env.h2)));
    await stopVm(env, src);
    await stopVm(env, dst);
    await env.lab.tgtadm(['--op', 'delete', '--mode', 'target', '--tid', String(tid), '--force']);
    await env.lab.tgtadm(['--op', 'delete', '--mode', 'account', '--user', t.user]);
  }

  const total: number[] = [];
  const startMs: number[] = [];
  const moveMs: number[] = [];
  const completeMs: number[] = [];
  for (let i = 0; i < MIGRATION_ROUNDS; i++) {
    const name = `mig${String(i)}`;
    const disk = `mdisk${String(i)}`;
    await createVolume(env.cp.api, disk, 64 * MiB, 'san');
    const src = await startHostVm({ lab: env.lab, host: env.h1, name, vmDir: vmDir(env, env.h1), testDir: join(env.dir, 'h1-test') });
    const dst = await startHostVm({ lab: env.lab, host: env.h2, name, vmDir: vmDir(env, env.h2), testDir: join(env.dir, 'h2-test'), incoming: true });
    env.vms.push(src, dst);
    await env.cp.api.ok('POST', `/v1/volumes/${disk}/attachments?wait=true`, 200, { body: { host: env.h1.name, instance: name } });
    await src.monitor.cont();
    let id = '';
    const t0 = performance.now();
    startMs.push(await timed(async () => {
      id = (await env.cp.api.ok<{ migration: { id: string } }>('POST', '/v1/migrations?wait=true', 200, { body: { instance: name, from: env.h1.name, to: env.h2.name } })).migration.id;
    }));
    moveMs.push(await timed(() => qemuMigrate(src, dst, env.h2)));
    completeMs.push(await timed(() => env.cp.api.ok('POST', `/v1/migrations/${id}/complete?wait=true`, 200)));
    total.push(performance.now() - t0);
    await env.cp.api.ok('POST', `/v1/volumes/${disk}/detach?wait=true`, 200, { body: {} });
    await stopVm(env, src);
    await stopVm(env, dst);
  }
  console.log(`\nLive migration of an idle 64 MiB-RAM KVM VM with one iSCSI disk between namespace hosts (${String(MIGRATION_ROUNDS)} rounds):`);
  row('migrate only (both sides attached by hand beforehand)', bare);
  row('Stowage: start + migrate + complete', total);
  row('  of which POST /v1/migrations?wait=true (connect on B)', startMs);
  row('  of which QEMU migrate', moveMs);
  row('  of which POST complete?wait=true (unplug + revoke on A)', completeMs);
  console.log(`ratio with / without Stowage's handoff: ${(median(total) / median(bare)).toFixed(2)}x`);
}

async function main(): Promise<void> {
  const lab = await startLab({ hosts: 2, tgtd: true, btrfs: true, xfs: false });
  const dir = makeTempDir('stw-bench-attach-');
  const env: Env = { lab, dir, cp: undefined as unknown as ControlPlane, h1: lab.host('h1'), h2: lab.host('h2'), vms: [], agents: [] };
  try {
    env.cp = await startControlPlane({ lab, dataDir: join(dir, 'server') });
    console.log(`lab ${lab.runId}: control plane ${env.cp.url}, tgtd ${lab.portal}`);
    await registerTgtBackend(env.cp.api, lab, 'san');
    for (const h of [env.h1, env.h2]) {
      mkdirSync(vmDir(env, h), { recursive: true });
      env.agents.push(startAgent({ host: h, apiUrl: env.cp.url, token: env.cp.token, vmDir: vmDir(env, h), logDir: dir }));
    }
    await waitHostsUp(env.cp.api, [env.h1.name, env.h2.name]);
    await attachBench(env);
    await migrationBench(env);
  } finally {
    for (const a of env.agents) await a.kill9().catch(() => undefined);
    for (const v of env.vms) await v.stop().catch(() => undefined);
    await (env.cp as ControlPlane | undefined)?.kill9().catch(() => undefined);
    await lab.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
