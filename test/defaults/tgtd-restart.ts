import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Lab, type LabHost } from '../lab/lab.js';
import { MiB, listAll, readCapacity, readsPattern, showAccounts, showTargets, type Connection, type EventView } from '../e2e-iscsi/e2e-kit.js';
import { startSanWorld, stopSanWorld } from './san-world.js';
import { SHIPPED, exportOf, report, timeUntil, type DefaultServer } from './defaults-kit.js';

/**
 * The twin at the shipped reconcile interval of `test/e2e-iscsi/tgtd-restart.test.ts` (which runs
 * the reconciler every second): kill -9 tgtd, start an empty one, and the export reconciler alone
 * brings back the target, LUN, ACL and CHAP account, after which the granted host logs in again.
 */
export function tgtdRestartScenario(): void {
  describe('defaults: a tgtd restart is healed by the export reconciler', () => {
    let lab: Lab;
    let dir: string;
    let s: DefaultServer;
    let h1: LabHost;
    let c: Connection;

    beforeAll(async () => {
      ({ lab, dir, s, h1, c } = await startSanWorld('stw-defaults-tgtd-', 16 * MiB, 0x5a));
    });

    afterAll(async () => {
      await stopSanWorld({ lab, dir, s, h1, c });
    });

    const deadlineMs = 3 * SHIPPED.reconcileIntervalMs + 30_000;

    it('brings back target, LUN, ACL and CHAP account on the shipped reconcile interval, and h1 logs in again', async () => {
      const iqn = c.iqn ?? '';
      const before = exportOf(await showTargets(lab), iqn);
      expect(before).toMatchObject({ acl: [h1.address], accounts: [c.chapUser], lun: { readonly: false } });
      const lastSeq = Math.max(0, ...(await listAll<EventView>(s.api, '/v1/events')).map((e) => e.seq));

      const killedAt = Date.now();
      await lab.restartTgtd();
      const healed = await timeUntil('the export reconciler to restore the export', killedAt, async () => {
        const now = exportOf(await showTargets(lab), iqn);
        return JSON.stringify(now) === JSON.stringify(before) ? now : undefined;
      }, deadlineMs);
      report('tgtd restart healed (kill -9 → export back)', healed.ms, `reconcileIntervalMs ${String(SHIPPED.reconcileIntervalMs)}`);

      expect(await showAccounts(lab)).toContain(c.chapUser);
      const volumeId = iqn.split(':').at(-1) ?? '';
      const events = (await listAll<EventView>(s.api, '/v1/events')).filter((e) => e.seq > lastSeq && e.action === 'reconcile');
      expect(events.map((e) => e.actor)).toContain('reconciler');
      expect(events.flatMap((e) => (e.details.restored as string[] | undefined) ?? [])).toEqual(expect.arrayContaining([`target:${volumeId}`, `lun:${volumeId}`, `acl:${volumeId}:${h1.address}`]));

      expect((await readCapacity(lab, h1, c)).stdout.trim()).toBe(String(16 * MiB));
      expect(await readsPattern(lab, h1, c, 0x5a, 0, 64 * 1024)).toBe(true);
      expect((await readCapacity(lab, h1, c, { user: c.chapUser ?? '', secret: 'NotTheSecret123' })).exitCode).not.toBe(0);
    }, deadlineMs + 120_000);
  });
}
