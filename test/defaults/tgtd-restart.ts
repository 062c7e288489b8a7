import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Lab, type LabHost } from '../lab/lab.js';
import { MiB, listAll, readCapacity, readsPattern, showAccounts, showTargets, type Connection, type EventView } from '../e2e-iscsi/e2e-kit.js';
import { startSanWorld, stopSanWorld } from './san-world.js';
import { pollUntil } from '../helpers/server.js';
import { SHIPPED, exportOf, report, timeUntil, type DefaultServer } from './defaults-kit.js';

/**
 * The twin at the shipped export-watch and reconcile intervals of `test/e2e-iscsi/tgtd-restart.test.ts`
 * (which runs the reconciler every second) and `test/e2e-iscsi/tgtd-restart-watch.test.ts`: kill -9
 * tgtd, start an empty one, and Stowage alone brings back the target, LUN, ACL and CHAP account,
 * after which the granted host logs in again. The export watch should notice within one
 * `exportWatchMs` and heal at once; the figure printed says which of it or the full pass did.
 */
export function tgtdRestartScenario(): void {
  describe('defaults: a tgtd restart is healed by the export watch', () => {
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

    // The watch should heal within an interval or two; the full pass is the fallback, so the deadline is derived from it.
    const deadlineMs = 3 * SHIPPED.reconcileIntervalMs + 30_000;

    it('brings back target, LUN, ACL and CHAP account on the shipped timings, and h1 logs in again', async () => {
      const iqn = c.iqn ?? '';
      const before = exportOf(await showTargets(lab), iqn);
      expect(before).toMatchObject({ acl: [h1.address], accounts: [c.chapUser], lun: { readonly: false } });
      const lastSeq = Math.max(0, ...(await listAll<EventView>(s.api, '/v1/events')).map((e) => e.seq));

      const killedAt = Date.now();
      await lab.restartTgtd();
      const healed = await timeUntil('Stowage to restore the export', killedAt, async () => {
        const now = exportOf(await showTargets(lab), iqn);
        return JSON.stringify(now) === JSON.stringify(before) ? now : undefined;
      }, deadlineMs, 100);
      expect(await showAccounts(lab)).toContain(c.chapUser);
      const volumeId = iqn.split(':').at(-1) ?? '';
      // tgtd shows a restore a moment before the reconcile that made it records its event.
      const events = await pollUntil('the reconcile event of the heal', async () => {
        const found = (await listAll<EventView>(s.api, '/v1/events')).filter((e) => e.seq > lastSeq && e.action === 'reconcile');
        return found.length > 0 ? found : undefined;
      }, 60_000);
      const by = [...new Set(events.map((e) => String(e.details.trigger)))].join(', ');
      report('tgtd restart healed (kill -9 → export back)', healed.ms, `healed by the ${by === 'watch' ? 'export watch' : `${by} (not the watch)`}; exportWatchMs ${String(SHIPPED.exportWatchMs)}, reconcileIntervalMs ${String(SHIPPED.reconcileIntervalMs)}`);
      expect(events.map((e) => e.actor)).toContain('reconciler');
      expect(events.flatMap((e) => (e.details.restored as string[] | undefined) ?? [])).toEqual(expect.arrayContaining([`target:${volumeId}`, `lun:${volumeId}`, `acl:${volumeId}:${h1.address}`]));

      expect((await readCapacity(lab, h1, c)).stdout.trim()).toBe(String(16 * MiB));
      expect(await readsPattern(lab, h1, c, 0x5a, 0, 64 * 1024)).toBe(true);
      expect((await readCapacity(lab, h1, c, { user: c.chapUser ?? '', secret: 'NotTheSecret123' })).exitCode).not.toBe(0);
    }, deadlineMs + 120_000);
  });
}
