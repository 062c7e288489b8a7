import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, makeTempDir, pollUntil } from '../helpers/server.js';
import { startLab, type Lab, type LabHost } from '../lab/lab.js';
import type { Connection } from '../e2e-iscsi/e2e-kit.js';
import {
  MiB, aclAddresses, agentConnection, allAttachments, createVolume, hasDisk, holdsPattern, liveGrants, readCapacityAs, registerTgtBackend,
  sessionAddresses, startAgent, startControlPlane, startHostVm, stwNodes, tcpActiveOpens, vmReadBack, vmWrite, waitHostsUp,
  type AgentProcess, type AttachmentView, type ControlPlane, type HostVm, type OperationView,
} from './hosts-kit.js';

/**
 * Runs one labelled step of this file's single story (its steps only make sense in order, so they
 * are one test), naming the step in whatever fails inside it.
 */
async function step(name: string, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    if (err instanceof Error) err.message = `step "${name}": ${err.message}`;
    throw err;
  }
}

/**
 * Issue 5, fencing and failover end to end: h1's agent dies with a read-write disk attached and its
 * QEMU still holding an iSCSI session. Attaching the disk elsewhere is refused until h1 is fenced;
 * the fence drops h1's session and refuses its re-login; evacuation hands the disk to h2's VM,
 * which reads what h1's VM wrote. Each step needs the state the one before left, so they are one
 * test of labelled steps (issue 8.7): run alone, nothing depends on another test.
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
  /** When the control plane last heard from a host's agent (its last report). */
  const lastHeard = async (c: ControlPlane, host: string): Promise<string | null> => (await c.api.ok<{ agentHeartbeatAt: string | null }>('GET', `/v1/hosts/${host}`, 200)).agentHeartbeatAt;

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

  it('h1\'s agent dies with a disk attached; fencing cuts h1 off, evacuation hands the disk to h2, and h1\'s restarted agent unplugs it', async () => {
    await step('h1\'s VM writes through its attached disk; h1\'s agent dies; attaching the disk to h2 is refused with HOST_NOT_FENCED naming h1', async () => {
      const r = await cp.api.ok<{ attachment: AttachmentView }>('POST', '/v1/volumes/disk1/attachments?wait=true', 200, { body: { host: 'h1', instance: 'vm1' } });
      expect(r.attachment.state).toBe('attached');
      await vmA.monitor.cont();
      await vmWrite(vmA, disk1, 0xd4, 0, 512 * 1024);
      await vmWrite(vmA, disk1, 0x71, 20 * MiB, 64 * 1024);
      const mine = await vmReadBack(vmA, disk1, join(dir, 'scratch'));
      expect(holdsPattern(mine, 0xd4, 0, 512 * 1024)).toBe(true);
      expect(holdsPattern(mine, 0x71, 20 * MiB, 64 * 1024)).toBe(true);
      loginA = await agentConnection(cp.api, h1, vmA, disk1);
      // h1's vCPUs stop before anything is cut: a guest that keeps reading its disk (SeaBIOS retrying a
      // boot) would leave an iSCSI request in flight when the fence drops the session, and libiscsi
      // never times out a request while it re-logs in (refused for ever), so unplugging the disk later
      // would wait on it for good. Block jobs and hot-unplug work the same on a paused VM.
      await vmA.monitor.client.execute('stop');

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

    await step('fences h1: its grant is revoked, its session dropped, its QEMU\'s re-logins and its credentials refused', async () => {
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

      // h1's QEMU lost its session and its initiator keeps trying to log in again (each try opens a
      // TCP connection from h1's namespace). Once it has tried twice, every try was refused: no
      // session from h1 ever shows up on tgtd. (No read is left in flight: stuck iSCSI I/O would
      // wedge QEMU's monitor, and the last test needs it to watch h1's agent.)
      const sessionsSeen: string[][] = [];
      const opensAfterFence = await tcpActiveOpens(lab, h1);
      await pollUntil('h1\'s QEMU to try to log in again twice', async () => {
        const s = await sessionAddresses(lab, disk1);
        if (s.length > 0) sessionsSeen.push(s);
        return (await tcpActiveOpens(lab, h1)) >= opensAfterFence + 2 ? true : undefined;
      }, 120_000, 200);
      expect(sessionsSeen).toEqual([]);
      // And QEMU cannot open the LUN anew with the very login its agent gave it (the agent's secret object).
      const qmp = vmA.monitor.client;
      const reopen = await qmp.execute('blockdev-add', {
        driver: 'iscsi', 'node-name': 'test-fenced-login', transport: 'tcp', portal: loginA.portal, target: loginA.iqn, lun: loginA.lun,
        'initiator-name': h1.initiatorName, user: loginA.chapUser, 'password-secret': `stw-${disk1}-sec`,
      }).then(() => 'opened', (err: unknown) => String(err));
      expect(reopen).not.toBe('opened');
      expect(reopen).toMatch(/login|Failed|connect/i);
      expect(await aclAddresses(lab, disk1)).toEqual([]);
      expect(await sessionAddresses(lab, disk1)).toEqual([]);
      expect(await hasDisk(vmA, disk1)).toBe(true);
    });

    await step('evacuates h1 to h2: h2\'s vm1 gets the disk and reads exactly what h1\'s VM wrote', async () => {
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

    await step('a fenced host\'s restarted agent reports, is told to want nothing and unplugs the disk from h1\'s VM; tgtd has no session from h1; h2 keeps it', async () => {
      const heardBefore = await lastHeard(cp, 'h1');
      const unplugged = vmA.monitor.client.eventWaiter('DEVICE_DELETED', (e) => e.data.device === `stw-dev-${disk1}`);
      try {
        const again = startAgent({ host: h1, apiUrl: cp.url, token: cp.token, vmDir: vmDir(h1), logDir: dir });
        agents.push(again);
        // Only the real agent reports: the control plane hears from it again, and h1 stays fenced.
        await pollUntil('the restarted agent of h1 to report', async () => ((await lastHeard(cp, 'h1')) !== heardBefore ? true : undefined));
        expect((await cp.api.ok<{ state: string }>('GET', '/v1/hosts/h1', 200)).state).toBe('fenced');
        // Told to want nothing, it unplugs what h1's VM still had: QEMU says the disk device is gone.
        await unplugged.wait(60_000).catch((err: unknown) => { throw new Error(`${String(err)}\nagent log:\n${readFileSync(again.logPath, 'utf8').slice(-4000)}`); });
        expect(again.alive()).toBe(true);
      } finally {
        unplugged.dispose();
      }
      expect(await sessionAddresses(lab, disk1)).toEqual([h2.address]);
      expect(await aclAddresses(lab, disk1)).toEqual([h2.address]);
      const r = await cp.api.request('POST', '/v1/volumes/disk1/attachments', { body: { host: 'h1', instance: 'vm1' } });
      expect(r.status).toBe(409);
      expect(await stwNodes(vmB)).toEqual([`stw-${disk1}`, `stw-${disk1}-p`].sort());
      expect(await hasDisk(vmB, disk1)).toBe(true);
    });

    // With no guest I/O in flight at the fence (h1's vCPUs were stopped first), the restarted agent's
    // blockdev-del of the cut iSCSI node returns and QEMU's monitor keeps answering. (With a read in
    // flight it would not: libiscsi never completes a request while its re-logins are refused.)
    await step('h1\'s QEMU removes the cut iSCSI node and its monitor keeps answering', async () => {
      await pollUntil('h1\'s agent to remove the rest of disk1 from its VM', async () => {
        const nodes = await vmA.monitor.client.execute('query-named-block-nodes', { flat: true }, { timeoutMs: 20_000 }) as { 'node-name'?: string }[];
        return nodes.some((n) => (n['node-name'] ?? '').startsWith('stw-')) ? undefined : true;
      }, 60_000, 200);
      expect(await hasDisk(vmA, disk1)).toBe(false);
    });
  }, 600_000);
});
