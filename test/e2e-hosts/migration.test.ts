import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, makeTempDir, pollUntil } from '../helpers/server.js';
import { startLab, type Lab, type LabHost } from '../lab/lab.js';
import { freeTcpPort } from '../lab/ports.js';
import {
  MiB, aclAddresses, agentConnection, allAttachments, createVolume, hasDisk, liveGrants, readCapacityAs, registerTgtBackend, sessionAddresses,
  holdsPattern, startAgent, startControlPlane, startHostVm, stwNodes, vmReadBack, vmWrite, waitHostsUp,
  type AgentProcess, type AttachmentView, type ControlPlane, type HostVm, type MigrationView, type OperationView,
} from './hosts-kit.js';

/**
 * Issue 5, live migration end to end: a real QEMU VM moves from namespace host h1 to h2 with its
 * iSCSI disk attached throughout. Stowage hands the storage over (start: grant and connect on h2
 * into the `-incoming` VM; complete: disconnect and revoke on h1); QEMU moves the VM in between.
 */
describe('live migration of a real QEMU VM between two namespace hosts with Stowage\'s storage handoff', () => {
  let lab: Lab;
  let dir: string;
  let cp: ControlPlane;
  let h1: LabHost;
  let h2: LabHost;
  const vms: HostVm[] = [];
  const agents: AgentProcess[] = [];
  let disk1 = '';
  let disk2 = '';

  const vmDir = (h: LabHost): string => join(dir, `${h.name}-vms`);
  const newVm = async (h: LabHost, incoming: boolean): Promise<HostVm> => {
    const vm = await startHostVm({ lab, host: h, name: 'vm1', vmDir: vmDir(h), testDir: join(dir, `${h.name}-test-${String(vms.length)}`), incoming });
    vms.push(vm);
    return vm;
  };

  beforeAll(async () => {
    await ensureBuilt();
    lab = await startLab({ hosts: 2, tgtd: true, btrfs: true, xfs: false });
    [h1, h2] = [lab.host('h1'), lab.host('h2')];
    dir = makeTempDir('stw-e2e-mig-');
    cp = await startControlPlane({ lab, dataDir: join(dir, 'server') });
    await registerTgtBackend(cp.api, lab, 'san');
    disk1 = await createVolume(cp.api, 'disk1', 32 * MiB, 'san');
    disk2 = await createVolume(cp.api, 'disk2', 16 * MiB, 'san');
  });

  afterAll(async () => {
    const errors: unknown[] = [];
    for (const a of agents) await a.kill9().catch((e: unknown) => errors.push(e));
    for (const v of vms) await v.stop().catch((e: unknown) => errors.push(e));
    await cp?.kill9().catch((e: unknown) => errors.push(e));
    await lab?.stop().catch((e: unknown) => errors.push(e));
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (errors.length > 0) throw new Error(`cleanup failed: ${errors.map(String).join('; ')}`);
  });

  it('migrates vm1 from h1 to h2: the destination gets the disk before the move, the source loses all access after complete', async () => {
    const src = await newVm(h1, false);
    const dst = await newVm(h2, true);
    for (const h of [h1, h2]) agents.push(startAgent({ host: h, apiUrl: cp.url, token: cp.token, vmDir: vmDir(h), logDir: dir }));
    await waitHostsUp(cp.api, ['h1', 'h2']);

    const att = await cp.api.ok<{ attachment: AttachmentView }>('POST', '/v1/volumes/disk1/attachments?wait=true', 200, { body: { host: 'h1', instance: 'vm1' } });
    expect(att.attachment.state).toBe('attached');
    await src.monitor.cont();
    // The VM itself writes through its disk (HMP qemu-io on the scsi-hd device).
    await vmWrite(src, disk1, 0xa7, 0, 256 * 1024);
    await vmWrite(src, disk1, 0x3c, 8 * MiB, 64 * 1024);
    const before = await vmReadBack(src, disk1, join(dir, 'scratch'));
    expect(holdsPattern(before, 0xa7, 0, 256 * 1024)).toBe(true);
    expect(holdsPattern(before, 0x3c, 8 * MiB, 64 * 1024)).toBe(true);
    const oldLogin = await agentConnection(cp.api, h1, src, disk1);

    const start = await cp.api.ok<{ migration: MigrationView; operation: OperationView }>('POST', '/v1/migrations?wait=true', 200, { body: { instance: 'vm1', from: 'h1', to: 'h2' } });
    expect(start.operation.state).toBe('succeeded');
    expect(start.migration.state).toBe('ready');
    // Both sides connected: h2's agent plugged the disk into the -incoming VM; h1 keeps its own.
    expect(await hasDisk(dst, disk1)).toBe(true);
    expect(await hasDisk(src, disk1)).toBe(true);
    expect((await dst.monitor.status()).status).toBe('inmigrate');
    expect(await aclAddresses(lab, disk1)).toEqual([h1.address, h2.address].sort());
    const found = await cp.api.ok<MigrationView>('POST', '/v1/migrations/find', 200, { body: { instance: 'vm1', from: 'h1', to: 'h2' } });
    expect(found.id).toBe(start.migration.id);

    // QEMU moves the VM.
    const uri = `tcp:${h2.address}:${String(await freeTcpPort('127.0.0.1'))}`;
    const resumed = dst.monitor.client.eventWaiter('RESUME');
    try {
      await dst.monitor.migrateIncoming(uri);
      await src.monitor.migrate(uri);
      const done = await src.monitor.waitMigration({ timeoutMs: 120_000 });
      expect(done.status).toBe('completed');
      await resumed.wait(60_000);
    } finally {
      resumed.dispose();
    }
    expect((await dst.monitor.status()).status).toBe('running');
    expect((await src.monitor.status()).status).toBe('postmigrate');

    const complete = await cp.api.ok<{ migration: MigrationView; operation: OperationView }>('POST', `/v1/migrations/${start.migration.id}/complete?wait=true`, 200);
    expect(complete.operation.state).toBe('succeeded');
    expect(complete.migration.state).toBe('completed');

    // The source: attachment gone, grant revoked, no ACL, no session, its credentials refused, disk unplugged.
    const list = await allAttachments(cp.api);
    expect(list.find((a) => a.id === att.attachment.id)?.state).toBe('gone');
    expect(list.filter((a) => a.volumeName === 'disk1' && a.state !== 'gone').map((a) => `${a.hostName}:${a.state}`)).toEqual(['h2:attached']);
    expect((await liveGrants(cp.api, 'disk1')).map((g) => g.hostName)).toEqual(['h2']);
    expect(await aclAddresses(lab, disk1)).toEqual([h2.address]);
    expect(await sessionAddresses(lab, disk1)).toEqual([h2.address]);
    const refused = await readCapacityAs(lab, h1, oldLogin);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stdout + refused.stderr).toMatch(/Target not found|Login Failed/i);
    await pollUntil('h1\'s agent to unplug the migrated-away disk', async () => ((await stwNodes(src)).length === 0 ? true : undefined));

    // The destination runs with the disk and reads what the source wrote.
    expect(await hasDisk(dst, disk1)).toBe(true);
    const after = await vmReadBack(dst, disk1, join(dir, 'scratch'));
    expect(holdsPattern(after, 0xa7, 0, 256 * 1024)).toBe(true);
    expect(holdsPattern(after, 0x3c, 8 * MiB, 64 * 1024)).toBe(true);
    expect(holdsPattern(after, 0, 256 * 1024, 64 * 1024)).toBe(true);
  });

  it('aborts a started migration: the destination is detached and revoked, the source untouched', async () => {
    // vm1 now runs on h2 with disk1. Attach disk2 too, then start a migration back to h1 and abort it.
    const dst = vms[1];
    if (dst === undefined) throw new Error('no destination VM from the first test');
    const back = await newVm(h1, true); // a fresh -incoming VM on h1 (the old one is postmigrate)
    await vms[0]?.stop();
    await cp.api.ok('POST', '/v1/volumes/disk2/attachments?wait=true', 200, { body: { host: 'h2', instance: 'vm1' } });
    await vmWrite(dst, disk2, 0x5e, 0, 64 * 1024);
    expect(holdsPattern(await vmReadBack(dst, disk2, join(dir, 'scratch')), 0x5e, 0, 64 * 1024)).toBe(true);
    const m = await cp.api.ok<{ migration: MigrationView }>('POST', '/v1/migrations?wait=true', 200, { body: { instance: 'vm1', from: 'h2', to: 'h1' } });
    expect(m.migration.state).toBe('ready');
    await pollUntil('both disks on h1\'s incoming VM', async () => ((await hasDisk(back, disk1)) && (await hasDisk(back, disk2)) ? true : undefined));
    const h1Login = await agentConnection(cp.api, h1, back, disk2);
    expect((await readCapacityAs(lab, h1, h1Login)).exitCode).toBe(0);

    const abort = await cp.api.ok<{ migration: MigrationView; operation: OperationView }>('POST', `/v1/migrations/${m.migration.id}/abort?wait=true`, 200);
    expect(abort.operation.state).toBe('succeeded');
    expect(abort.migration.state).toBe('aborted');
    // h1 (the would-be destination): nothing left.
    for (const [name, id] of [['disk1', disk1], ['disk2', disk2]] as const) {
      expect((await liveGrants(cp.api, name)).map((g) => g.hostName)).toEqual(['h2']);
      expect(await aclAddresses(lab, id)).toEqual([h2.address]);
      expect(await sessionAddresses(lab, id)).toEqual([h2.address]);
    }
    expect((await readCapacityAs(lab, h1, h1Login)).exitCode).not.toBe(0);
    await pollUntil('h1\'s agent to unplug both disks', async () => ((await stwNodes(back)).length === 0 ? true : undefined));
    // h2 (the source): untouched, still running with both disks and their data.
    const live = (await allAttachments(cp.api)).filter((a) => a.state !== 'gone');
    expect(live.map((a) => `${a.volumeName}@${a.hostName}:${a.state}`).sort()).toEqual(['disk1@h2:attached', 'disk2@h2:attached']);
    expect((await dst.monitor.status()).status).toBe('running');
    expect(holdsPattern(await vmReadBack(dst, disk2, join(dir, 'scratch')), 0x5e, 0, 64 * 1024)).toBe(true);
    expect(holdsPattern(await vmReadBack(dst, disk1, join(dir, 'scratch')), 0xa7, 0, 256 * 1024)).toBe(true);
  });
});
