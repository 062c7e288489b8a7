import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, makeTempDir, pollUntil, sleep } from '../helpers/server.js';
import { startLab, type Lab, type LabHost } from '../lab/lab.js';
import {
  MiB, aclAddresses, agentConnection, blockDevices, createVolume, hasDisk, liveGrants, readCapacityAs, registerTgtBackend, sessionAddresses,
  startAgent, startControlPlane, startHostVm, stwNodes, waitAttachment, waitHostsUp,
  type AgentProcess, type AttachmentView, type ControlPlane, type HostVm, type OperationView,
} from './hosts-kit.js';

/**
 * Issue 5, attach/detach and agent restart, end to end: the built control plane on the lab bridge,
 * a real `stowage agent` and a real QEMU VM inside a namespace host, a real tgtd. The test watches
 * QEMU through a second QMP monitor and tgtd through tgtadm.
 */
describe('attach, detach and agent restart against real QEMU, tgtd and a namespace host', () => {
  let lab: Lab;
  let dir: string;
  let cp: ControlPlane;
  let h1: LabHost;
  let vm: HostVm;
  let agent: AgentProcess;
  const agents: AgentProcess[] = [];
  let disk1 = '';
  let disk2 = '';
  const vmDir = (): string => join(dir, 'h1-vms');

  const restartAgent = (): AgentProcess => {
    agent = startAgent({ host: h1, apiUrl: cp.url, token: cp.token, vmDir: vmDir(), logDir: dir });
    agents.push(agent);
    return agent;
  };

  beforeAll(async () => {
    await ensureBuilt();
    lab = await startLab({ hosts: 1, tgtd: true, btrfs: true, xfs: false });
    h1 = lab.host('h1');
    dir = makeTempDir('stw-e2e-hosts-');
    cp = await startControlPlane({ lab, dataDir: join(dir, 'server') });
    await registerTgtBackend(cp.api, lab, 'san');
    disk1 = await createVolume(cp.api, 'disk1', 32 * MiB, 'san');
    disk2 = await createVolume(cp.api, 'disk2', 16 * MiB, 'san');
    vm = await startHostVm({ lab, host: h1, name: 'vm1', vmDir: vmDir(), testDir: join(dir, 'h1-test') });
    restartAgent();
    await waitHostsUp(cp.api, ['h1']);
  });

  afterAll(async () => {
    const errors: unknown[] = [];
    for (const a of agents) await a.kill9().catch((e: unknown) => errors.push(e));
    await vm?.stop().catch((e: unknown) => errors.push(e));
    await cp?.kill9().catch((e: unknown) => errors.push(e));
    await lab?.stop().catch((e: unknown) => errors.push(e));
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (errors.length > 0) throw new Error(`cleanup failed: ${errors.map(String).join('; ')}`);
  });

  it('attaches: grant on tgtd, the agent hot-plugs the LUN, QEMU shows the disk, the attachment is attached with its device id', async () => {
    const r = await cp.api.ok<{ attachment: AttachmentView; operation: OperationView }>('POST', '/v1/volumes/disk1/attachments?wait=true', 200, { body: { host: 'h1', instance: 'vm1' } });
    expect(r.operation.state).toBe('succeeded');
    expect(r.attachment.state).toBe('attached');
    expect(r.attachment.deviceId).toBe(`stw-dev-${disk1}`);
    expect(await blockDevices(vm)).toContain(`stw-dev-${disk1}`);
    expect(await stwNodes(vm)).toEqual([`stw-${disk1}`, `stw-${disk1}-p`].sort());
    const attached = (await vm.monitor.listAttached()).find((a) => a.volumeId === disk1);
    expect(attached).toMatchObject({ state: 'attached', protocol: 'iscsi', readOnly: false, sizeBytes: 32 * MiB });
    expect(await aclAddresses(lab, disk1)).toEqual([h1.address]);
    expect(await sessionAddresses(lab, disk1)).toEqual([h1.address]);
    expect((await liveGrants(cp.api, 'disk1')).map((g) => `${g.hostName}:${g.state}`)).toEqual(['h1:active']);
  });

  it('detaches: the disk leaves QEMU, the grant is revoked, tgtd has no ACL or session for the host and its credentials are refused', async () => {
    const login = await agentConnection(cp.api, h1, vm, disk1);
    expect((await readCapacityAs(lab, h1, login)).exitCode).toBe(0);
    const d = await cp.api.ok<{ items: { attachment: AttachmentView; operation: { stepsDone: { name: string; note?: string }[] } }[] }>('POST', '/v1/volumes/disk1/detach?wait=true', 200, { body: {} });
    expect(d.items.map((i) => i.attachment.state)).toEqual(['gone']);
    expect(d.items[0]?.operation.stepsDone.find((s) => s.name === 'disconnect')?.note).toBe('disconnected');
    expect(await hasDisk(vm, disk1)).toBe(false);
    expect(await stwNodes(vm)).toEqual([]);
    expect(await liveGrants(cp.api, 'disk1')).toEqual([]);
    expect(await aclAddresses(lab, disk1)).not.toContain(h1.address);
    expect(await sessionAddresses(lab, disk1)).toEqual([]);
    const refused = await readCapacityAs(lab, h1, login);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stdout + refused.stderr).toMatch(/Target not found|Authentication failure|Login Failed/i);
  });

  it('an agent killed with -9 while attached and restarted keeps the disk plugged the whole time', async () => {
    const r = await cp.api.ok<{ attachment: AttachmentView }>('POST', '/v1/volumes/disk1/attachments?wait=true', 200, { body: { host: 'h1', instance: 'vm1' } });
    expect(r.attachment.state).toBe('attached');
    // Watch QEMU continuously: the device must never disappear.
    let watching = true;
    let samples = 0;
    let missing = 0;
    const watcher = (async () => {
      while (watching) {
        if (!(await hasDisk(vm, disk1))) missing++;
        samples++;
        await sleep(20);
      }
    })();
    try {
      await agent.kill9();
      await sleep(1500);
      restartAgent();
      // The new agent reports the disk it finds: the control plane sees a fresh report with the device.
      const since = Date.now();
      const reportedAt = async (): Promise<number | null> => {
        const a = await cp.api.ok<AttachmentView & { reportedAt: string | null }>('GET', `/v1/attachments/${r.attachment.id}`, 200);
        return a.reportedAt === null ? null : Date.parse(a.reportedAt);
      };
      const first = await pollUntil('a report from the restarted agent', async () => {
        const at = await reportedAt();
        return at !== null && at > since ? at : undefined;
      });
      // The agent converges between reports: two more reports with the device mean at least one whole
      // converge pass of the new agent ran after its first report, so "the disk stayed" is evidence.
      const second = await pollUntil('a second report from the restarted agent', async () => {
        const at = await reportedAt();
        return at !== null && at > first ? at : undefined;
      });
      await pollUntil('a third report from the restarted agent', async () => {
        const at = await reportedAt();
        return at !== null && at > second ? at : undefined;
      });
    } finally {
      watching = false;
      await watcher;
    }
    expect(samples).toBeGreaterThan(10);
    expect(missing).toBe(0);
    const a = await cp.api.ok<AttachmentView>('GET', `/v1/attachments/${r.attachment.id}`, 200);
    expect(a.state).toBe('attached');
    expect(a.deviceId).toBe(`stw-dev-${disk1}`);
    expect(await aclAddresses(lab, disk1)).toEqual([h1.address]);
  });

  it('re-connects a disk the VM lost behind the agent\'s back (device_del + blockdev-del by hand)', async () => {
    const deleted = vm.monitor.client.eventWaiter('DEVICE_DELETED', (e) => e.data.device === `stw-dev-${disk1}`);
    try {
      await vm.monitor.client.execute('device_del', { id: `stw-dev-${disk1}` });
      await deleted.wait(30_000);
    } finally {
      deleted.dispose();
    }
    await vm.monitor.client.execute('blockdev-del', { 'node-name': `stw-${disk1}` });
    await vm.monitor.client.execute('blockdev-del', { 'node-name': `stw-${disk1}-p` });
    await vm.monitor.client.execute('object-del', { id: `stw-${disk1}-sec` });
    expect(await stwNodes(vm)).toEqual([]);
    await pollUntil('the agent to re-connect disk1', async () => ((await hasDisk(vm, disk1)) ? true : undefined));
    expect(await stwNodes(vm)).toEqual([`stw-${disk1}`, `stw-${disk1}-p`].sort());
    const a = (await cp.api.ok<{ items: AttachmentView[] }>('GET', '/v1/attachments?volume=disk1', 200)).items;
    expect(a.map((x) => x.state)).toEqual(['attached']);
  });

  it('removes a stw- volume plugged by hand that no attachment wants', async () => {
    // Give h1 a grant on disk2 (no attachment), then plug it into the VM by hand as the agent would.
    const g = await cp.api.ok<{ connection: { portal: string; iqn: string; lun: number; chapUser: string; chapSecret: string } }>('POST', '/v1/volumes/disk2/grants?wait=true', 200, { body: { host: 'h1', mode: 'rw' } });
    await agent.kill9(); // so the hand-plugged disk exists before the agent looks
    await vm.monitor.attachIscsi({ volumeId: disk2, portal: g.connection.portal, iqn: g.connection.iqn, lun: g.connection.lun, chapUser: g.connection.chapUser, chapSecret: g.connection.chapSecret, initiatorName: h1.initiatorName, readOnly: false });
    expect(await hasDisk(vm, disk2)).toBe(true);
    restartAgent();
    await pollUntil('the agent to remove the unwanted disk2', async () => ((await stwNodes(vm)).some((n) => n.includes(disk2)) ? undefined : true));
    expect(await hasDisk(vm, disk2)).toBe(false);
    expect(await hasDisk(vm, disk1)).toBe(true);
    expect((await cp.api.ok<{ items: AttachmentView[] }>('GET', '/v1/attachments?volume=disk1', 200)).items.map((x) => x.state)).toEqual(['attached']);
    await cp.api.ok('DELETE', '/v1/volumes/disk2/grants/h1?wait=true', 200);
  });

  it('removes the leftover device of an attachment detached while the agent was dead', async () => {
    await agent.kill9();
    const d = await cp.api.ok<{ items: { attachment: AttachmentView; operation: { stepsDone: { name: string; note?: string }[] } }[] }>('POST', '/v1/volumes/disk1/detach?wait=true', 200, { body: {} });
    expect(d.items[0]?.attachment.state).toBe('gone');
    expect(['host-down', 'timed-out']).toContain(d.items[0]?.operation.stepsDone.find((s) => s.name === 'disconnect')?.note);
    // Storage is cut even though the host never confirmed; the device is still plugged in QEMU.
    expect(await aclAddresses(lab, disk1)).not.toContain(h1.address);
    expect(await sessionAddresses(lab, disk1)).toEqual([]);
    expect(await hasDisk(vm, disk1)).toBe(true);
    restartAgent();
    await pollUntil('the restarted agent to remove the dangling disk1', async () => ((await stwNodes(vm)).length === 0 ? true : undefined));
    expect(await blockDevices(vm)).toEqual([]);
    const a = await waitAttachment(cp.api, d.items[0]?.attachment.id ?? '', 'gone', (x) => x.state === 'gone');
    expect(a.deviceId).toBeNull();
  });
});
