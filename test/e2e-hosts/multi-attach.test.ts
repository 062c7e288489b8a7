import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, ensureBuilt, makeTempDir, pollUntil } from '../helpers/server.js';
import { startLab, type Lab, type LabHost } from '../lab/lab.js';
import {
  MiB, aclAddresses, agentConnection, hasDisk, holdsPattern, liveGrants, registerTgtBackend, sessionAddresses, startAgent, startControlPlane,
  startHostVm, stwNodes, vmReadBack, vmWrite, waitAttachment, waitHostsUp,
  type AgentProcess, type AttachmentView, type ControlPlane, type HostVm, type OperationView,
} from './hosts-kit.js';

/**
 * Issue 8 (points 5 and 6), multi-attach and the two detach paths end to end: two namespace hosts,
 * each with a real `stowage agent` and a real QEMU VM, attach one multiattach volume read-write
 * and both reach `attached`; then `POST /v1/attachments/{id}/detach` takes it from one host and
 * `stowage volume detach --host` (the built CLI) from the other. Only the real agents report.
 */
describe('a multiattach volume attached read-write on two real hosts, then detached one host at a time', () => {
  let lab: Lab;
  let dir: string;
  let cp: ControlPlane;
  let h1: LabHost;
  let h2: LabHost;
  let vm1: HostVm;
  let vm2: HostVm;
  const agents: AgentProcess[] = [];
  let shared = '';
  const attachmentOf = new Map<string, string>();

  const vmDir = (h: LabHost): string => join(dir, `${h.name}-vms`);

  /** Runs the built CLI against the control plane (URL and token from the environment, never argv). */
  const cli = (args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => new Promise((resolve) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'stowage.js'), ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, STOWAGE_URL: cp.url, STOWAGE_TOKEN: cp.token }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('close', (code) => { resolve({ code, stdout, stderr }); });
  });

  beforeAll(async () => {
    await ensureBuilt();
    lab = await startLab({ hosts: 2, tgtd: true, btrfs: true, xfs: false });
    [h1, h2] = [lab.host('h1'), lab.host('h2')];
    dir = makeTempDir('stw-e2e-multi-');
    cp = await startControlPlane({ lab, dataDir: join(dir, 'server') });
    await registerTgtBackend(cp.api, lab, 'san');
    const r = await cp.api.ok<{ volume: { id: string; state: string; multiattach: boolean } }>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'shared', sizeBytes: 16 * MiB, backend: 'san', multiattach: true } });
    expect(r.volume).toMatchObject({ state: 'available', multiattach: true });
    shared = r.volume.id;
    vm1 = await startHostVm({ lab, host: h1, name: 'vm1', vmDir: vmDir(h1), testDir: join(dir, 'h1-test') });
    vm2 = await startHostVm({ lab, host: h2, name: 'vm1', vmDir: vmDir(h2), testDir: join(dir, 'h2-test') });
    for (const h of [h1, h2]) agents.push(startAgent({ host: h, apiUrl: cp.url, token: cp.token, vmDir: vmDir(h), logDir: dir }));
    await waitHostsUp(cp.api, ['h1', 'h2']);
  });

  afterAll(async () => {
    const errors: unknown[] = [];
    for (const a of agents) await a.kill9().catch((e: unknown) => errors.push(e));
    for (const v of [vm1, vm2]) await v?.stop().catch((e: unknown) => errors.push(e));
    await cp?.kill9().catch((e: unknown) => errors.push(e));
    await lab?.stop().catch((e: unknown) => errors.push(e));
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (errors.length > 0) throw new Error(`cleanup failed: ${errors.map(String).join('; ')}`);
  });

  it('both hosts attach it read-write and reach attached; each VM has the disk in query-block, each with its own CHAP login', async () => {
    for (const h of [h1, h2]) {
      const r = await cp.api.ok<{ attachment: AttachmentView; operation: OperationView }>('POST', '/v1/volumes/shared/attachments?wait=true', 200, { body: { host: h.name, instance: 'vm1', mode: 'rw' } });
      expect(r.operation.state).toBe('succeeded');
      expect(r.attachment).toMatchObject({ state: 'attached', mode: 'rw', deviceId: `stw-dev-${shared}` });
      attachmentOf.set(h.name, r.attachment.id);
    }
    for (const [h, vm] of [[h1, vm1], [h2, vm2]] as const) {
      const a = await waitAttachment(cp.api, attachmentOf.get(h.name) ?? '', 'attached', (x) => x.state === 'attached');
      expect(a.mode).toBe('rw');
      expect(await hasDisk(vm, shared)).toBe(true);
      expect((await vm.monitor.listAttached()).find((x) => x.volumeId === shared)).toMatchObject({ state: 'attached', readOnly: false, sizeBytes: 16 * MiB });
    }
    expect((await liveGrants(cp.api, 'shared')).map((g) => `${g.hostName}:${g.mode}:${g.state}`).sort()).toEqual(['h1:rw:active', 'h2:rw:active']);
    expect(await aclAddresses(lab, shared)).toEqual([h1.address, h2.address].sort());
    expect(await sessionAddresses(lab, shared)).toEqual([h1.address, h2.address].sort());
    const [login1, login2] = [await agentConnection(cp.api, h1, vm1, shared), await agentConnection(cp.api, h2, vm2, shared)];
    expect(login1.iqn).toBe(login2.iqn);
    expect(login1.chapUser).not.toBe(login2.chapUser);
  });

  it('what h1\'s VM writes, h2\'s VM reads from the same volume', async () => {
    await vm1.monitor.cont();
    await vm2.monitor.cont();
    await vmWrite(vm1, shared, 0x5a, 2 * MiB, 128 * 1024);
    const seen = await vmReadBack(vm2, shared, join(dir, 'scratch'));
    expect(holdsPattern(seen, 0x5a, 2 * MiB, 128 * 1024)).toBe(true);
  });

  it('POST /v1/attachments/{id}/detach takes it from h1 only: h1\'s VM loses the disk, h2 keeps it', async () => {
    const id = attachmentOf.get('h1') ?? '';
    const r = await cp.api.ok<{ attachment: AttachmentView; operation: OperationView & { stepsDone: { name: string; note?: string }[] } }>('POST', `/v1/attachments/${id}/detach?wait=true`, 200);
    expect(r.operation.state).toBe('succeeded');
    expect(r.attachment).toMatchObject({ id, state: 'gone' });
    expect(r.operation.stepsDone.find((s) => s.name === 'disconnect')?.note).toBe('disconnected');
    expect(await hasDisk(vm1, shared)).toBe(false);
    expect(await stwNodes(vm1)).toEqual([]);
    expect(await hasDisk(vm2, shared)).toBe(true);
    expect((await liveGrants(cp.api, 'shared')).map((g) => g.hostName)).toEqual(['h2']);
    expect(await aclAddresses(lab, shared)).toEqual([h2.address]);
    expect(await sessionAddresses(lab, shared)).toEqual([h2.address]);
    const live = (await cp.api.ok<{ items: AttachmentView[] }>('GET', '/v1/attachments?volume=shared', 200)).items;
    expect(live.map((a) => `${a.hostName}:${a.state}`)).toEqual(['h2:attached']);
  });

  it('`stowage volume detach shared --host h2` takes it from h2: no VM, grant, ACL or session is left', async () => {
    const r = await cli(['volume', 'detach', 'shared', '--host', 'h2', '-o', 'json']);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const after = JSON.parse(r.stdout) as AttachmentView[];
    expect(after.map((a) => `${a.hostName}:${a.state}`)).toEqual(['h2:gone']);
    expect(await hasDisk(vm2, shared)).toBe(false);
    expect(await stwNodes(vm2)).toEqual([]);
    expect(await liveGrants(cp.api, 'shared')).toEqual([]);
    expect(await aclAddresses(lab, shared)).toEqual([]);
    expect(await sessionAddresses(lab, shared)).toEqual([]);
    // The agents are still alive and keep reporting an empty set (no one puts the disk back).
    const heard = await cp.api.ok<{ agentHeartbeatAt: string | null }>('GET', '/v1/hosts/h2', 200);
    await pollUntil('another report from h2\'s agent', async () => {
      const now = await cp.api.ok<{ agentHeartbeatAt: string | null }>('GET', '/v1/hosts/h2', 200);
      return now.agentHeartbeatAt !== heard.agentHeartbeatAt ? true : undefined;
    });
    expect(await hasDisk(vm2, shared)).toBe(false);
    expect(agents.every((a) => a.alive())).toBe(true);
  });
});
