import { existsSync, readFileSync, rmSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, makeTempDir, pollUntil, sleep } from '../helpers/server.js';
import { startLab, type Lab, type LabHost } from '../lab/lab.js';
import type { Connection } from '../e2e-iscsi/e2e-kit.js';
import {
  MiB, aclAddresses, agentConnection, allAttachments, createVolume, hasDisk, holdsPattern, liveGrants, readCapacityAs, registerTgtBackend,
  sessionAddresses, startAgent, startControlPlane, startHostVm, stwNodes, vmReadBack, vmWrite, waitHostsUp,
  type AgentProcess, type AttachmentView, type ControlPlane, type HostVm, type OperationView,
} from './hosts-kit.js';

/**
 * Issue 5, fencing and failover end to end: h1's agent dies with a read-write disk attached and its
 * QEMU still holding an iSCSI session. Attaching the disk elsewhere is refused until h1 is fenced;
 * the fence drops h1's session and refuses its re-login; evacuation hands the disk to h2's VM,
 * which reads what h1's VM wrote.
 */
describe('fencing and failover against real QEMU VMs, agents and tgtd', () => {
  let lab: Lab;
  let dir: string;
  let cp: ControlPlane;
  let h1: LabHost;
  let h2: LabHost;
  let vmA: HostVm;
  let vmB: HostVm;
  const agents: AgentProcess[] = [];
  let disk1 = '';
  let loginA: Connection;

  const vmDir = (h: LabHost): string => join(dir, `${h.name}-vms`);

  beforeAll(async () => {
    await ensureBuilt();
    lab = await startLab({ hosts: 2, tgtd: true, btrfs: true, xfs: false });
    [h1, h2] = [lab.host('h1'), lab.host('h2')];
    dir = makeTempDir('stw-e2e-fence-');
    cp = await startControlPlane({ lab, dataDir: join(dir, 'server') });
    await registerTgtBackend(cp.api, lab, 'san');
    disk1 = await createVolume(cp.api, 'disk1', 32 * MiB, 'san');
    vmA = await startHostVm({ lab, host: h1, name: 'vm1', vmDir: vmDir(h1), testDir: join(dir, 'h1-test') });
    vmB = await startHostVm({ lab, host: h2, name: 'vm1', vmDir: vmDir(h2), testDir: join(dir, 'h2-test') });
    for (const h of [h1, h2]) agents.push(startAgent({ host: h, apiUrl: cp.url, token: cp.token, vmDir: vmDir(h), logDir: dir }));
    await waitHostsUp(cp.api, ['h1', 'h2']);
  });

  afterAll(async () => {
    const errors: unknown[] = [];
    for (const a of agents) await a.kill9().catch((e: unknown) => errors.push(e));
    for (const v of [vmA, vmB]) await v?.stop().catch((e: unknown) => errors.push(e));
    await cp?.kill9().catch((e: unknown) => errors.push(e));
    await lab?.stop().catch((e: unknown) => errors.push(e));
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (errors.length > 0) throw new Error(`cleanup failed: ${errors.map(String).join('; ')}`);
  });

  it('h1\'s VM writes through its attached disk; h1\'s agent dies; attaching the disk to h2 is refused with HOST_NOT_FENCED naming h1', async () => {
    const r = await cp.api.ok<{ attachment: AttachmentView }>('POST', '/v1/volumes/disk1/attachments?wait=true', 200, { body: { host: 'h1', instance: 'vm1' } });
    expect(r.attachment.state).toBe('attached');
    await vmA.monitor.cont();
    await vmWrite(vmA, disk1, 0xd4, 0, 512 * 1024);
    await vmWrite(vmA, disk1, 0x71, 20 * MiB, 64 * 1024);
    const mine = await vmReadBack(vmA, disk1, join(dir, 'scratch'));
    expect(holdsPattern(mine, 0xd4, 0, 512 * 1024)).toBe(true);
    expect(holdsPattern(mine, 0x71, 20 * MiB, 64 * 1024)).toBe(true);
    loginA = await agentConnection(cp.api, h1, vmA, disk1);

    // While h1 is up, the disk is simply in use there.
    const inUse = await cp.api.request('POST', '/v1/volumes/disk1/attachments', { body: { host: 'h2', instance: 'vm1' } });
    expect(inUse.status).toBe(409);
    expect((inUse.body as { code: string }).code).toBe('VOLUME_IN_USE');

    const agentA = agents[0];
    if (agentA === undefined) throw new Error('no agent for h1');
    await agentA.kill9();
    // h1 goes down once its heartbeat is older than hostDownAfterMs; from then on the refusal says to fence it.
    const refusal = await pollUntil('the attach to h2 to be refused with HOST_NOT_FENCED', async () => {
      const res = await cp.api.request('POST', '/v1/volumes/disk1/attachments', { body: { host: 'h2', instance: 'vm1' } });
      if (res.status !== 409) throw new Error(`attach to h2 answered ${String(res.status)}: ${res.text}`);
      const body = res.body as { code: string; message: string; details?: { host?: string } };
      return body.code === 'HOST_NOT_FENCED' ? body : undefined;
    }, 60_000, 250);
    expect(refusal.message).toContain('h1');
    expect(refusal.message).toContain('stowage host fence h1');
    // h1's QEMU still holds its session: nothing was cut yet.
    expect(await sessionAddresses(lab, disk1)).toEqual([h1.address]);
    expect(await hasDisk(vmA, disk1)).toBe(true);
  });

  it('fences h1: its grant is revoked, its session dropped, its re-login refused, and its QEMU cannot read the LUN any more', async () => {
    const op = await cp.api.ok<OperationView>('POST', '/v1/hosts/h1/fence?wait=true', 200);
    expect(op.state).toBe('succeeded');
    expect((await cp.api.ok<{ state: string }>('GET', '/v1/hosts/h1', 200)).state).toBe('fenced');
    expect(await liveGrants(cp.api, 'disk1')).toEqual([]);
    expect(await aclAddresses(lab, disk1)).toEqual([]);
    expect(await sessionAddresses(lab, disk1)).toEqual([]);
    const cut = (await allAttachments(cp.api)).filter((a) => a.hostName === 'h1');
    expect(cut.map((a) => `${a.state}:${a.stateReason ?? ''}`)).toEqual(['gone:host fenced']);

    // h1's own credentials no longer get in.
    const refused = await readCapacityAs(lab, h1, loginA);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stdout + refused.stderr).toMatch(/Target not found|Login Failed/i);

    // h1's QEMU tries to read the whole disk (a block job, never HMP qemu-io: that would block the
    // monitor): the read never completes successfully and no session from h1 comes back.
    const scratch = join(dir, 'scratch');
    mkdirSync(scratch, { recursive: true });
    const file = join(scratch, 'fenced-read.raw');
    writeFileSync(file, '');
    truncateSync(file, 32 * MiB);
    await vmA.monitor.client.execute('blockdev-add', { driver: 'raw', 'node-name': 'test-fenced-rb', file: { driver: 'file', filename: file } });
    const completed = vmA.monitor.client.eventWaiter('BLOCK_JOB_COMPLETED', (e) => e.data.device === 'test-fenced-job');
    try {
      await vmA.monitor.client.execute('blockdev-backup', { 'job-id': 'test-fenced-job', device: `stw-${disk1}`, target: 'test-fenced-rb', sync: 'full' });
      let outcome: 'stalled' | 'failed' | 'completed' = 'stalled';
      const deadline = Date.now() + 8000;
      while (Date.now() < deadline && outcome === 'stalled') {
        expect(await sessionAddresses(lab, disk1)).toEqual([]);
        try {
          const e = await completed.wait(500);
          outcome = typeof e.data.error === 'string' ? 'failed' : 'completed';
        } catch {
          // still running (stalled on the lost session)
        }
      }
      expect(outcome).not.toBe('completed');
    } finally {
      completed.dispose();
    }
    expect(existsSync(file) && holdsPattern(readFileSync(file), 0xd4, 0, 512 * 1024)).toBe(false);
    expect(await aclAddresses(lab, disk1)).toEqual([]);
    expect(await sessionAddresses(lab, disk1)).toEqual([]);
  });

  it('evacuates h1 to h2: h2\'s vm1 gets the disk and reads exactly what h1\'s VM wrote', async () => {
    const ev = await cp.api.ok<{ items: OperationView[] }>('POST', '/v1/hosts/h1/evacuate?wait=true', 200, { body: { to: 'h2' } });
    expect(ev.items.map((o) => `${o.kind}:${o.state}`)).toEqual(['attachment.attach:succeeded']);
    const live = (await allAttachments(cp.api)).filter((a) => a.state !== 'gone');
    expect(live.map((a) => `${a.volumeName}@${a.hostName}/${a.instance}:${a.state}`)).toEqual(['disk1@h2/vm1:attached']);
    expect(await hasDisk(vmB, disk1)).toBe(true);
    expect(await aclAddresses(lab, disk1)).toEqual([h2.address]);
    expect(await sessionAddresses(lab, disk1)).toEqual([h2.address]);
    await vmB.monitor.cont();
    const data = await vmReadBack(vmB, disk1, join(dir, 'scratch'));
    expect(holdsPattern(data, 0xd4, 0, 512 * 1024)).toBe(true);
    expect(holdsPattern(data, 0x71, 20 * MiB, 64 * 1024)).toBe(true);
    // h2 writes on; h1 is still locked out.
    await vmWrite(vmB, disk1, 0x99, 4 * MiB, 64 * 1024);
    expect(holdsPattern(await vmReadBack(vmB, disk1, join(dir, 'scratch')), 0x99, 4 * MiB, 64 * 1024)).toBe(true);
    expect((await readCapacityAs(lab, h1, loginA)).exitCode).not.toBe(0);
  });

  it('a fenced host\'s restarted agent is told to want nothing; attaching to a fenced host is refused', async () => {
    const again = startAgent({ host: h1, apiUrl: cp.url, token: cp.token, vmDir: vmDir(h1), logDir: dir });
    agents.push(again);
    const answer = await cp.api.ok<{ hostState: string; desired: unknown[] }>('POST', '/v1/agents/h1/report', 200, {
      body: { addresses: [h1.address], connectors: ['iscsi'], instances: ['vm1'], connected: [] },
    });
    expect(answer).toMatchObject({ hostState: 'fenced', desired: [] });
    const r = await cp.api.request('POST', '/v1/volumes/disk1/attachments', { body: { host: 'h1', instance: 'vm1' } });
    expect(r.status).toBe(409);
    await sleep(1000);
    expect(again.alive()).toBe(true);
    expect(await stwNodes(vmB)).toEqual([`stw-${disk1}`, `stw-${disk1}-p`].sort());
  });
});
