import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, failpointsReachedPath, makeTempDir, pollUntil, reachedFailpoints, sleep } from '../helpers/server.js';
import { startLab, type Lab, type LabHost } from '../lab/lab.js';
import { freeTcpPort } from '../lab/ports.js';
import {
  MiB, aclAddresses, allAttachments, blockDevices, createVolume, liveGrants, registerTgtBackend, sessionAddresses, startAgent, startControlPlane,
  startHostVm, stwNodes, waitHostsUp,
  type AgentProcess, type AttachmentView, type ControlPlane, type HostVm, type MigrationView,
} from './hosts-kit.js';

/**
 * Issue 5, crash safety end to end: the control plane is killed with -9 (failpoints) and the agents
 * are killed with -9 in the middle of attach, detach, migration and fence, against real QEMU VMs,
 * agents and tgtd. After each restart everything must settle consistent: every attachment attached
 * or gone/error (never half), tgtd's ACLs exactly the live grants, no session of a host without a
 * grant, and no `stw-` block node in a VM that no attachment wants.
 */
describe('kill -9 of the server and of the agents at every step: attachments end consistent', () => {
  let lab: Lab;
  let dir: string;
  let dataDir: string;
  let port: number;
  let cp: ControlPlane;
  let h1: LabHost;
  let h2: LabHost;
  const vms = new Map<string, HostVm>();
  const agents = new Map<string, AgentProcess>();
  const allAgents: AgentProcess[] = [];
  const servers: ControlPlane[] = [];
  const volumes = new Map<string, string>();

  const vmDir = (h: LabHost): string => join(dir, `${h.name}-vms`);
  const vol = (name: string): string => {
    const id = volumes.get(name);
    if (id === undefined) throw new Error(`no volume ${name}`);
    return id;
  };
  const vmOf = (h: LabHost): HostVm => {
    const v = vms.get(h.name);
    if (v === undefined) throw new Error(`no VM on ${h.name}`);
    return v;
  };

  const startServer = async (failpoints?: string): Promise<ControlPlane> => {
    const s = await startControlPlane({ lab, dataDir, port, ...(failpoints !== undefined ? { failpoints } : {}) });
    servers.push(s);
    cp = s;
    return s;
  };
  const startHostAgent = (h: LabHost): AgentProcess => {
    const a = startAgent({ host: h, apiUrl: cp.url, token: cp.token, vmDir: vmDir(h), logDir: dir });
    agents.set(h.name, a);
    allAgents.push(a);
    return a;
  };
  const killAgent = async (h: LabHost): Promise<void> => {
    await agents.get(h.name)?.kill9();
  };

  /**
   * Restarts the server with `failpoint=kill`, fires `action` (which the crash interrupts), waits for
   * the kill, and restarts it on the same data dir and port without failpoints.
   */
  const crashAt = async (failpoint: string, action: () => Promise<unknown>): Promise<void> => {
    await cp.kill9();
    rmSync(failpointsReachedPath(dataDir), { force: true });
    const doomed = await startServer(`${failpoint}=kill`);
    void action().catch(() => undefined);
    await Promise.race([doomed.exited, sleep(90_000)]);
    expect(doomed.hasExited()).toBe(true);
    expect(reachedFailpoints(dataDir)).toEqual([failpoint]);
    await startServer();
  };

  /** What is wrong right now, as a list (empty = consistent). */
  const problems = async (): Promise<string[]> => {
    const out: string[] = [];
    const atts = await allAttachments(cp.api);
    for (const a of atts) if (!['attached', 'gone', 'error'].includes(a.state)) out.push(`attachment ${a.volumeName}@${a.hostName} is ${a.state}`);
    const migrations = (await cp.api.ok<{ items: MigrationView[] }>('GET', '/v1/migrations', 200)).items;
    for (const m of migrations) if (!['ready', 'completed', 'aborted', 'error'].includes(m.state)) out.push(`migration ${m.id} is ${m.state}`);
    const addressOf = new Map(lab.hosts.map((h) => [h.name, h.address]));
    for (const [name, id] of volumes) {
      const grants = await liveGrants(cp.api, name);
      for (const g of grants) if (g.state !== 'active') out.push(`grant of ${g.hostName} on ${name} is ${g.state}`);
      const want = grants.map((g) => addressOf.get(g.hostName) ?? g.hostName).sort();
      const acl = await aclAddresses(lab, id);
      if (JSON.stringify(acl) !== JSON.stringify(want)) out.push(`${name}: tgtd ACL ${JSON.stringify(acl)} but grants for ${JSON.stringify(want)}`);
      for (const s of await sessionAddresses(lab, id)) if (!want.includes(s)) out.push(`${name}: session from ${s} without a grant`);
      for (const a of atts.filter((x) => x.volumeName === name && x.state === 'attached')) {
        if (!grants.some((g) => g.hostName === a.hostName)) out.push(`${name}: attached to ${a.hostName} without a grant`);
      }
    }
    for (const h of lab.hosts) {
      const vm = vmOf(h);
      const attached = atts.filter((a) => a.hostName === h.name && a.instance === 'vm1' && a.state === 'attached').map((a) => a.volumeId);
      const wantNodes = attached.flatMap((id) => [`stw-${id}`, `stw-${id}-p`]).sort();
      const nodes = await stwNodes(vm);
      if (JSON.stringify(nodes) !== JSON.stringify(wantNodes)) out.push(`${h.name}/vm1: block nodes ${JSON.stringify(nodes)} but attached ${JSON.stringify(attached)}`);
      const devices = (await blockDevices(vm)).filter((d) => d.startsWith('stw-'));
      const wantDevices = attached.map((id) => `stw-dev-${id}`).sort();
      if (JSON.stringify(devices) !== JSON.stringify(wantDevices)) out.push(`${h.name}/vm1: devices ${JSON.stringify(devices)} but attached ${JSON.stringify(attached)}`);
    }
    return out;
  };

  /** Waits (generously) until everything is consistent and returns the attachments. */
  const settled = async (): Promise<AttachmentView[]> => {
    await pollUntil('everything to settle consistent', async () => {
      const p = await problems();
      if (p.length > 0) throw new Error(p.join('; '));
      return true;
    }, 120_000, 250);
    return allAttachments(cp.api);
  };
  const stateOf = (atts: readonly AttachmentView[], volume: string, host: string): string =>
    atts.filter((a) => a.volumeName === volume && a.hostName === host).map((a) => a.state).join(',');

  beforeAll(async () => {
    await ensureBuilt();
    lab = await startLab({ hosts: 2, tgtd: true, btrfs: true, xfs: false });
    [h1, h2] = [lab.host('h1'), lab.host('h2')];
    dir = makeTempDir('stw-e2e-crash-');
    dataDir = join(dir, 'server');
    port = await freeTcpPort(lab.bridgeAddress);
    await startServer();
    await registerTgtBackend(cp.api, lab, 'san');
    for (const name of ['disk1', 'disk2', 'disk3', 'disk4']) volumes.set(name, await createVolume(cp.api, name, 16 * MiB, 'san'));
    for (const h of [h1, h2]) {
      vms.set(h.name, await startHostVm({ lab, host: h, name: 'vm1', vmDir: vmDir(h), testDir: join(dir, `${h.name}-test`) }));
      startHostAgent(h);
    }
    await waitHostsUp(cp.api, ['h1', 'h2']);
  });

  afterAll(async () => {
    const errors: unknown[] = [];
    for (const a of allAgents) await a.kill9().catch((e: unknown) => errors.push(e));
    for (const v of vms.values()) await v.stop().catch((e: unknown) => errors.push(e));
    for (const s of servers) await s.kill9().catch((e: unknown) => errors.push(e));
    await lab?.stop().catch((e: unknown) => errors.push(e));
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (errors.length > 0) throw new Error(`cleanup failed: ${errors.map(String).join('; ')}`);
  });

  it('server killed after the grant of an attach: the restarted server finishes it (attached, one ACL, the disk in the VM)', async () => {
    await crashAt('attachment.attach/grant:after', () => cp.api.request('POST', '/v1/volumes/disk1/attachments', { body: { host: 'h1', instance: 'vm1' } }));
    const atts = await settled();
    expect(stateOf(atts, 'disk1', 'h1')).toBe('attached');
  });

  it('server killed before the connect step of an attach: it resumes and ends attached', async () => {
    await crashAt('attachment.attach/connect:before', () => cp.api.request('POST', '/v1/volumes/disk2/attachments', { body: { host: 'h1', instance: 'vm1' } }));
    const atts = await settled();
    expect(stateOf(atts, 'disk2', 'h1')).toBe('attached');
  });

  it('server killed after the disconnect step of a detach: it ends gone, revoked, unplugged', async () => {
    await crashAt('attachment.detach/disconnect:after', () => cp.api.request('POST', '/v1/volumes/disk1/detach', { body: {} }));
    const atts = await settled();
    expect(stateOf(atts, 'disk1', 'h1')).toBe('gone');
    expect(await liveGrants(cp.api, 'disk1')).toEqual([]);
  });

  it('server killed before the revoke step of a detach: the revoke still happens', async () => {
    await crashAt('attachment.detach/revoke:before', () => cp.api.request('POST', '/v1/volumes/disk2/detach', { body: {} }));
    const atts = await settled();
    expect(stateOf(atts, 'disk2', 'h1')).toBe('gone');
    expect(await aclAddresses(lab, vol('disk2'))).toEqual([]);
  });

  it('server killed after the destination attach of a migration start: it becomes ready with both sides attached; abort then cleans the destination', async () => {
    await cp.api.ok('POST', '/v1/volumes/disk3/attachments?wait=true', 200, { body: { host: 'h1', instance: 'vm1' } });
    await crashAt('migration.start/attach-destination:after', () => cp.api.request('POST', '/v1/migrations', { body: { instance: 'vm1', from: 'h1', to: 'h2' } }));
    let atts = await settled();
    expect(stateOf(atts, 'disk3', 'h1')).toBe('attached');
    expect(stateOf(atts, 'disk3', 'h2')).toBe('attached');
    const m = (await cp.api.ok<{ items: MigrationView[] }>('GET', '/v1/migrations', 200)).items;
    expect(m.map((x) => x.state)).toEqual(['ready']);
    expect(await aclAddresses(lab, vol('disk3'))).toEqual([h1.address, h2.address].sort());
    await cp.api.ok('POST', `/v1/migrations/${m[0]?.id ?? ''}/abort?wait=true`, 200);
    atts = await settled();
    expect(atts.filter((a) => a.volumeName === 'disk3' && a.state !== 'gone').map((a) => a.hostName)).toEqual(['h1']);
  });

  it('server killed before the source detach of a migration complete: it completes, the source is gone and revoked', async () => {
    const started = await cp.api.ok<{ migration: MigrationView }>('POST', '/v1/migrations?wait=true', 200, { body: { instance: 'vm1', from: 'h1', to: 'h2' } });
    expect(started.migration.state).toBe('ready');
    await crashAt('migration.complete/detach-source:before', () => cp.api.request('POST', `/v1/migrations/${started.migration.id}/complete`));
    const atts = await settled();
    expect(atts.filter((a) => a.volumeName === 'disk3' && a.state !== 'gone').map((a) => `${a.hostName}:${a.state}`)).toEqual(['h2:attached']);
    expect(await aclAddresses(lab, vol('disk3'))).toEqual([h2.address]);
    const m = (await cp.api.ok<{ items: MigrationView[] }>('GET', '/v1/migrations', 200)).items.find((x) => x.id === started.migration.id);
    expect(m?.state).toBe('completed');
  });

  it('agent killed -9 right after an attach was submitted, restarted: the attach completes', async () => {
    const r = await cp.api.ok<{ attachment: AttachmentView }>('POST', '/v1/volumes/disk4/attachments', 202, { body: { host: 'h1', instance: 'vm1' } });
    await killAgent(h1);
    await sleep(1000);
    startHostAgent(h1);
    const atts = await settled();
    expect(atts.find((a) => a.id === r.attachment.id)?.state).toBe('attached');
  });

  it('agent killed mid-attach (pieces of a half-plugged disk left in QEMU), restarted: it cleans them up and finishes the attach', async () => {
    await killAgent(h1);
    // What an agent killed between blockdev-add and device_add leaves: a protocol node of ours and
    // nothing else, for the wanted disk1 and for an unwanted disk2.
    const vm = vmOf(h1);
    for (const id of [vol('disk1'), vol('disk2')]) await vm.monitor.client.execute('blockdev-add', { driver: 'null-co', 'node-name': `stw-${id}-p`, size: 16 * MiB });
    const r = await cp.api.ok<{ attachment: AttachmentView }>('POST', '/v1/volumes/disk1/attachments', 202, { body: { host: 'h1', instance: 'vm1' } });
    startHostAgent(h1);
    const atts = await settled();
    expect(atts.find((a) => a.id === r.attachment.id)?.state).toBe('attached');
    const disk1 = (await vm.monitor.listAttached()).find((a) => a.volumeId === vol('disk1'));
    expect(disk1).toMatchObject({ state: 'attached', protocol: 'iscsi' });
  });

  it('agent killed -9 right after a detach was submitted: the revoke happens anyway; the restarted agent unplugs the leftover', async () => {
    const d = await cp.api.ok<{ items: { attachment: AttachmentView }[] }>('POST', '/v1/volumes/disk4/detach', 202, { body: {} });
    await killAgent(h1);
    const id = d.items[0]?.attachment.id ?? '';
    await pollUntil('disk4 gone', async () => ((await cp.api.ok<AttachmentView>('GET', `/v1/attachments/${id}`, 200)).state === 'gone' ? true : undefined), 90_000);
    expect(await aclAddresses(lab, vol('disk4'))).toEqual([]);
    expect(await sessionAddresses(lab, vol('disk4'))).toEqual([]);
    await waitHostsUp(cp.api, ['h2']);
    startHostAgent(h1);
    const atts = await settled();
    expect(stateOf(atts, 'disk1', 'h1')).toContain('attached');
  });

  it('server killed after the revoke step of a fence: the fence finishes, the host is fenced with no grant, ACL or session left', async () => {
    // h2 holds disk3 (from the completed migration); its agent dies, then h2 is fenced.
    await killAgent(h2);
    await crashAt('host.fence/revoke:after', () => cp.api.request('POST', '/v1/hosts/h2/fence'));
    await pollUntil('h2 fenced', async () => ((await cp.api.ok<{ state: string }>('GET', '/v1/hosts/h2', 200)).state === 'fenced' ? true : undefined), 90_000);
    expect(await liveGrants(cp.api, 'disk3')).toEqual([]);
    expect(await aclAddresses(lab, vol('disk3'))).toEqual([]);
    expect(await sessionAddresses(lab, vol('disk3'))).toEqual([]);
    // The fenced host's restarted agent is told to want nothing and unplugs the cut disk.
    startHostAgent(h2);
    const atts = await settled();
    const onH2 = atts.filter((a) => a.hostName === 'h2');
    expect(onH2.length).toBeGreaterThan(0);
    expect(onH2.every((a) => a.state === 'gone')).toBe(true);
    expect(await stwNodes(vmOf(h2))).toEqual([]);
  });
});
