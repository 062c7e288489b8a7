import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, makeTempDir } from '../helpers/server.js';
import { startLab, type Lab, type LabHost } from '../lab/lab.js';
import {
  MiB, aclAddresses, createVolume, registerTgtBackend, sessionAddresses, startAgent, startControlPlane, startHostVm, waitHostsUp,
  type AgentProcess, type ControlPlane, type HostVm,
} from './hosts-kit.js';

/**
 * Regression test: the export reconciler reads the desired grants, then applies them to tgtd. A
 * detach whose revoke lands in between used to be undone by that pass (the host's ACL and CHAP
 * account re-bound until the next pass). With the reconciler running every 100 ms, every detach
 * must leave no ACL and no session behind the moment it reports done.
 */
describe('detach racing the export reconciler', () => {
  let lab: Lab;
  let dir: string;
  let cp: ControlPlane;
  let h1: LabHost;
  let vm: HostVm;
  let agent: AgentProcess;
  let disk = '';

  beforeAll(async () => {
    await ensureBuilt();
    lab = await startLab({ hosts: 1, tgtd: true, btrfs: true, xfs: false });
    h1 = lab.host('h1');
    dir = makeTempDir('stw-e2e-race-');
    // A pass every 100 ms so one lands inside some detach of the 20; the reconciler on its shipped interval: test/defaults/tgtd-restart.ts.
    cp = await startControlPlane({ lab, dataDir: join(dir, 'server'), env: { STOWAGE_RECONCILE_INTERVAL_MS: '100' } });
    await registerTgtBackend(cp.api, lab, 'san');
    disk = await createVolume(cp.api, 'disk1', 16 * MiB, 'san');
    vm = await startHostVm({ lab, host: h1, name: 'vm1', vmDir: join(dir, 'vms'), testDir: join(dir, 'test') });
    agent = startAgent({ host: h1, apiUrl: cp.url, token: cp.token, vmDir: join(dir, 'vms'), logDir: dir });
    await waitHostsUp(cp.api, ['h1']);
  });

  afterAll(async () => {
    const errors: unknown[] = [];
    await agent?.kill9().catch((e: unknown) => errors.push(e));
    await vm?.stop().catch((e: unknown) => errors.push(e));
    await cp?.kill9().catch((e: unknown) => errors.push(e));
    await lab?.stop().catch((e: unknown) => errors.push(e));
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (errors.length > 0) throw new Error(`cleanup failed: ${errors.map(String).join('; ')}`);
  });

  it('leaves no ACL or session after any of 20 attach/detach cycles', async () => {
    const leftovers: string[] = [];
    for (let i = 0; i < 20; i++) {
      await cp.api.ok('POST', '/v1/volumes/disk1/attachments?wait=true', 200, { body: { host: 'h1', instance: 'vm1' } });
      expect(await aclAddresses(lab, disk)).toEqual([h1.address]);
      await cp.api.ok('POST', '/v1/volumes/disk1/detach?wait=true', 200, { body: {} });
      const acl = await aclAddresses(lab, disk);
      const sessions = await sessionAddresses(lab, disk);
      if (acl.length > 0 || sessions.length > 0) leftovers.push(`cycle ${String(i)}: acl ${JSON.stringify(acl)}, sessions ${JSON.stringify(sessions)}`);
    }
    expect(leftovers).toEqual([]);
  });
});
