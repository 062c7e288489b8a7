import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/core/ids.js';
import type { TgtTarget } from '../../src/drivers/tgt/tgtadm-show.js';
import { afterFullReconcilePass } from '../helpers/activity.js';
import { pollUntil } from '../helpers/server.js';
import { startLab, type Lab, type LabHost } from '../lab/lab.js';
import {
  MiB, createVolume, ensureDir, grant, listAll, readCapacity, readsPattern, registerBackend, registerLabHosts, revoke, showAccounts,
  showTargets, startE2eServer, tgtUri, writeAndVerify, type Connection, type E2eServer, type EventView,
} from './e2e-kit.js';

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

/** What must come back after a restart: per target its ACL, accounts and LUN 1 flags and file. */
function exportsOf(targets: readonly TgtTarget[], iqns: readonly string[]): unknown[] {
  return iqns.map((iqn) => {
    const t = targets.find((x) => x.iqn === iqn);
    const lun = t?.luns.find((l) => l.lun === 1);
    return {
      iqn,
      acl: [...(t?.aclAddresses ?? [])].sort(),
      accounts: [...(t?.accounts ?? [])].sort(),
      lun: lun ? { backingPath: lun.backingPath, readonly: lun.readonly, thin: lun.thin } : null,
    };
  });
}

/**
 * Issue 4's "tgtd keeps nothing across a restart": kill -9 the lab's tgtd, start an empty one on
 * the same control port and portal, and Stowage's export reconciler alone (no API call) restores
 * every target, LUN, ACL and CHAP account, removes an orphan target under its IQN prefix and leaves
 * a foreign target alone. The hosts then log in with the connection info they had before. The
 * steps need the state the one before left, so they are one test of labelled steps (issue 8.7).
 */
describe('tgtd restart: the reconciler restores every export with no manual action', () => {
  let lab: Lab;
  let s: E2eServer;
  let h1: LabHost;
  let h2: LabHost;
  let h3: LabHost;
  let c1: Connection;
  let c2: Connection;
  let c3: Connection;
  let iqns: string[];
  let before: unknown[];

  beforeAll(async () => {
    lab = await startLab({ hosts: 3, tgtd: true, btrfs: true, xfs: true });
    [h1, h2, h3] = [lab.host('h1'), lab.host('h2'), lab.host('h3')];
    // Reconcile every second so the heal and the later "stays revoked" passes fit in seconds; twin on the shipped interval: test/defaults/tgtd-restart.ts.
    s = await startE2eServer({ reconcileIntervalMs: 1000 });
    await registerLabHosts(s.api, lab);
    await registerBackend(s.api, 'san-btrfs', tgtUri(lab, `btrfs://${lab.btrfsDir}/pool`));
    await registerBackend(s.api, 'san-xfs', tgtUri(lab, `dir://${ensureDir(`${lab.xfsDir}/luns`)}`));
  });

  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      await lab?.stop();
    }
  });

  it('exports made on both backends come back by themselves after kill -9 of tgtd; hosts log in again; a later revoke sticks', async () => {
    await step('sets up exports on both backends: a read-write grant and two read-only grants, with data written over iSCSI', async () => {
      await createVolume(s.api, 'rw-vol', 32 * MiB, 'san-btrfs');
      c1 = await grant(s.api, 'rw-vol', 'h1', 'rw');
      await writeAndVerify(lab, h1, c1, 0xa1, 0, 128 * 1024);

      await createVolume(s.api, 'ro-vol', 24 * MiB, 'san-xfs');
      const w = await grant(s.api, 'ro-vol', 'h2', 'rw');
      await writeAndVerify(lab, h2, w, 0xb2, 1 * MiB, 64 * 1024);
      await revoke(s.api, 'ro-vol', 'h2');
      c2 = await grant(s.api, 'ro-vol', 'h2', 'ro');
      c3 = await grant(s.api, 'ro-vol', 'h3', 'ro');
      expect(await readsPattern(lab, h3, c3, 0xb2, 1 * MiB, 64 * 1024)).toBe(true);

      iqns = [c1.iqn ?? '', c2.iqn ?? ''];
      before = exportsOf(await showTargets(lab), iqns);
      expect(before).toMatchObject([
        { acl: [h1.address], accounts: [c1.chapUser], lun: { readonly: false, thin: true } },
        { acl: [h2.address, h3.address].sort(), accounts: [c2.chapUser, c3.chapUser].sort(), lun: { readonly: true, thin: true } },
      ]);
    });

    await step('after kill -9 and a fresh tgtd, targets, LUNs, ACLs and accounts come back by themselves; an orphan goes, a foreign target stays', async () => {
      const lastSeq = Math.max(0, ...(await listAll<EventView>(s.api, '/v1/events')).map((e) => e.seq));
      const oldPid = lab.tgtdPid;
      const newPid = await lab.restartTgtd();
      expect(newPid).not.toBe(oldPid);
      // Made by hand right after the restart: one under Stowage's IQN prefix that no volume owns,
      // one under somebody else's prefix.
      const orphanId = newId('volume');
      const orphanIqn = `iqn.2026-11.io.stowage:${orphanId}`;
      const foreignIqn = `iqn.2024-01.lab.other:keep-${lab.runId}`;
      await lab.tgtadm(['--op', 'new', '--mode', 'target', '--tid', '90', '-T', orphanIqn]);
      await lab.tgtadm(['--op', 'new', '--mode', 'target', '--tid', '91', '-T', foreignIqn]);

      const after = await pollUntil('the reconciler to restore every export and remove the orphan', async () => {
        const targets = await showTargets(lab);
        const now = exportsOf(targets, iqns);
        const names = targets.map((t) => t.iqn);
        return JSON.stringify(now) === JSON.stringify(before) && !names.includes(orphanIqn) ? targets : undefined;
      }, 60_000, 200);
      expect(after.map((t) => t.iqn)).toContain(foreignIqn);
      expect(await showAccounts(lab)).toEqual(expect.arrayContaining([c1.chapUser, c2.chapUser, c3.chapUser]));

      // tgtd shows a restore before the pass that made it has recorded its event: wait for that pass to end.
      await Promise.all([afterFullReconcilePass(s.api, 'san-btrfs'), afterFullReconcilePass(s.api, 'san-xfs')]);
      const events = (await listAll<EventView>(s.api, '/v1/events')).filter((e) => e.seq > lastSeq && e.action === 'reconcile');
      expect(events.length).toBeGreaterThan(0);
      expect(events.every((e) => e.actor === 'reconciler' && e.resourceType === 'backend')).toBe(true);
      const restored = events.flatMap((e) => (e.details.restored as string[] | undefined) ?? []);
      const removed = events.flatMap((e) => (e.details.removed as string[] | undefined) ?? []);
      const [v1, v2] = iqns.map((i) => i.split(':').at(-1) ?? '');
      expect(restored).toEqual(expect.arrayContaining([`target:${v1 ?? ''}`, `lun:${v1 ?? ''}`, `acl:${v1 ?? ''}:${h1.address}`, `target:${v2 ?? ''}`, `acl:${v2 ?? ''}:${h3.address}`]));
      expect(removed).toContain(`target:${orphanId}`);
      expect(removed.filter((r) => r.startsWith('target:') && r !== `target:${orphanId}`)).toEqual([]);
    });

    await step('the hosts log in again with the connection info they already had and read what they wrote before', async () => {
      expect((await readCapacity(lab, h1, c1)).stdout.trim()).toBe(String(32 * MiB));
      expect(await readsPattern(lab, h1, c1, 0xa1, 0, 128 * 1024)).toBe(true);
      await writeAndVerify(lab, h1, c1, 0xa3, 4 * MiB, 64 * 1024);
      expect((await readCapacity(lab, h2, c2)).stdout.trim()).toBe(String(24 * MiB));
      expect(await readsPattern(lab, h2, c2, 0xb2, 1 * MiB, 64 * 1024)).toBe(true);
      expect(await readsPattern(lab, h3, c3, 0xb2, 1 * MiB, 64 * 1024)).toBe(true);
      // Only what was granted came back: h3 has no access to the read-write volume.
      expect((await readCapacity(lab, h3, c1)).exitCode).not.toBe(0);
      expect((await readCapacity(lab, h1, c1, { user: c1.chapUser ?? '', secret: 'NotTheSecret123' })).exitCode).not.toBe(0);
      // The grants are unchanged in the API.
      const g = await s.api.ok<{ items: { hostName: string; state: string }[] }>('GET', '/v1/volumes/ro-vol/grants', 200);
      expect(g.items.map((x) => `${x.hostName}:${x.state}`).sort()).toEqual(['h2:active', 'h3:active']);
    });

    await step('a revoke after the restart takes effect and stays so across later reconcile passes', async () => {
      await revoke(s.api, 'ro-vol', 'h2');
      expect((await readCapacity(lab, h2, c2)).exitCode).not.toBe(0);
      await afterFullReconcilePass(s.api, 'san-xfs'); // a whole reconcile pass after the revoke must not bring h2 back
      const seen = (await showTargets(lab)).find((x) => x.iqn === c3.iqn);
      expect(seen?.aclAddresses).toEqual([h3.address]);
      expect(seen?.accounts).toEqual([c3.chapUser]);
      expect((await readCapacity(lab, h2, c2)).exitCode).not.toBe(0);
      expect(await readsPattern(lab, h3, c3, 0xb2, 1 * MiB, 64 * 1024)).toBe(true);
    });
  }, 480_000);
});
