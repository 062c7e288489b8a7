import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/core/ids.js';
import { requirePort } from '../../src/drivers/sdk/ports.js';
import type { BlockDriver } from '../../src/drivers/sdk/types.js';
import { TgtadmClient } from '../../src/drivers/tgt/tgtadm-client.js';
import { SpawnCommandRunner } from '../../src/system/command-runner.js';
import { describeBlockDriverConformance, qemuIoDataAccess } from '../drivers/conformance.js';
import { startLab, type Lab } from '../lab/lab.js';
import { remoteBackend, startTestNode, TestChannels, testIdentities, type TestNode } from './node-kit.js';

const runner = new SpawnCommandRunner();
const sig = (): AbortSignal => new AbortController().signal;

/** A node in this process whose tgt backend serves a private tgtd of the lab, LUNs on its reflink XFS. */
async function tgtOnNode(): Promise<{ lab: Lab; node: TestNode; channels: TestChannels; driver: BlockDriver; local: BlockDriver; cleanup: () => Promise<void> }> {
  const lab = await startLab({ hosts: 0, tgtd: true, btrfs: false, xfs: true });
  await runner.run('mkdir', ['-p', `${lab.xfsDir}/luns`]);
  const node = await startTestNode(runner);
  const channels = new TestChannels(node, await testIdentities(runner));
  await channels.sync();
  const controlDir = await mkdtemp(join(tmpdir(), 'stowage-remote-cp-'));
  const uri = `tgt://${lab.portal}?backing=${encodeURIComponent(`dir://${lab.xfsDir}/luns`)}&control=${String(lab.tgtdControlPort)}&iqnPrefix=${encodeURIComponent(lab.iqnPrefix)}`;
  const { driver, local } = remoteBackend(channels, runner, controlDir, uri, channels.row.id);
  return {
    lab, node, channels, driver, local,
    cleanup: async () => {
      channels.close();
      await node.stop();
      await lab.stop();
      await rm(controlDir, { recursive: true, force: true });
    },
  };
}

describeBlockDriverConformance('tgt over a real tgtd, on a storage node', async () => {
  const t = await tgtOnNode();
  // The node is this machine: the kit reads the LUN's backing file where the node's driver keeps it.
  return { driver: t.driver, data: qemuIoDataAccess(t.local, runner), cleanup: t.cleanup };
}, { claims: ['snapshot', 'clone', 'revert'] });

describe('tgt exports reconciled on a node', () => {
  let t: Awaited<ReturnType<typeof tgtOnNode>>;
  beforeAll(async () => { t = await tgtOnNode(); });
  afterAll(async () => { await t.cleanup(); });

  it('asks the control plane about orphan candidates, and removes only those it does not know', async () => {
    const tgtadm = new TgtadmClient(runner, t.lab.tgtdControlPort);
    const known = newId('volume');
    const unknown = newId('volume');
    await tgtadm.run(['--op', 'new', '--mode', 'target', '--tid', '50', '-T', `${t.lab.iqnPrefix}:${known}`], { signal: sig() });
    await tgtadm.run(['--op', 'new', '--mode', 'target', '--tid', '51', '-T', `${t.lab.iqnPrefix}:${unknown}`], { signal: sig() });
    const asked: string[][] = [];
    const report = await requirePort(t.driver, 'exports', 'remote-tgt').reconcile([], sig(), {
      knownVolumes: async (ids) => { asked.push([...ids]); return new Set(ids.filter((id) => id === known)); },
    });
    expect(asked.map((ids) => [...ids].sort())).toEqual([[known, unknown].sort()]);
    expect(report.removed).toEqual([`target:${unknown}`]);
    const iqns = (await tgtadm.showTargets(sig())).map((x) => x.iqn);
    expect(iqns).toContain(`${t.lab.iqnPrefix}:${known}`);
    expect(iqns).not.toContain(`${t.lab.iqnPrefix}:${unknown}`);

    // Without knownVolumes every candidate is an orphan, as for a local driver.
    expect((await requirePort(t.driver, 'exports', 'remote-tgt').reconcile([], sig())).removed).toEqual([`target:${known}`]);
  });

  it('grants with CHAP through the node; the secret reaches tgtd but not the node\'s log', async () => {
    const secret = `Chap${newId('grant').replace(/[^a-z0-9]/g, '')}`;
    const h = await t.driver.createVolume({ id: newId('volume'), name: 'v', sizeBytes: 4 << 20 }, sig());
    const info = await requirePort(t.driver, 'access', 'remote-tgt').grant(h, { host: { name: 'h1', addresses: ['10.99.0.9'], initiatorName: 'iqn.2024-01.test:h1' }, mode: 'rw', chap: { user: 'u1', secret } }, sig());
    expect(info.protocol).toBe('iscsi');
    expect(info.chapSecret).toBe(secret);
    expect((await requirePort(t.driver, 'access', 'remote-tgt').list(sig())).length).toBeGreaterThan(0);
    await t.driver.deleteVolume(h, sig());
    expect(t.node.log()).toMatch(/"method":"grant"/);
    expect(t.node.log()).not.toContain(secret);
  });
});
