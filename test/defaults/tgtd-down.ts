import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/core/schemas/backend-schema.js';
import type { StowageEvent } from '../../src/core/schemas/event-schema.js';
import { pollUntil } from '../helpers/server.js';
import { type Lab, type LabHost } from '../lab/lab.js';
import { MiB, readCapacity, readsPattern, showTargets, type Connection } from '../e2e-iscsi/e2e-kit.js';
import { startSanWorld, stopSanWorld } from './san-world.js';
import { SHIPPED, exportOf, report, timeUntil, type DefaultServer } from './defaults-kit.js';

/**
 * A tgt backend whose tgtd dies and stays dead is noticed as offline by the periodic probe; once a
 * fresh tgtd runs, the probe brings the backend back and the export reconciler (which skips an
 * offline backend) restores the export, so the granted host logs in again with no manual action.
 */
export function tgtdDownScenario(): void {
  describe('defaults: the periodic probe notices a dead tgtd, and the backend heals once tgtd is back', () => {
    let lab: Lab;
    let dir: string;
    let s: DefaultServer;
    let h1: LabHost;
    let c: Connection;

    const san = async (): Promise<Backend> => s.api.ok<Backend>('GET', '/v1/backends/san', 200);

    beforeAll(async () => {
      ({ lab, dir, s, h1, c } = await startSanWorld('stw-defaults-tgtd-down-', 8 * MiB, 0x3c));
    });

    afterAll(async () => {
      await stopSanWorld({ lab, dir, s, h1, c });
    });

    // Offline within one probe interval; back within one more, then exports within one reconcile pass.
    const deadlineMs = 3 * SHIPPED.probeIntervalMs + 30_000;
    const healDeadlineMs = 3 * (SHIPPED.probeIntervalMs + SHIPPED.reconcileIntervalMs) + 30_000;

    it('is offline while tgtd is dead, then enabled, re-exported and usable again after tgtd restarts', async () => {
      const iqn = c.iqn ?? '';
      const before = exportOf(await showTargets(lab), iqn);
      const backendId = (await san()).id;

      // The lab's own tgtd, killed by the PID the lab started it with.
      const pid = lab.tgtdPid;
      process.kill(pid, 'SIGKILL');
      const killedAt = Date.now();
      await pollUntil(`tgtd ${String(pid)} to exit`, () => Promise.resolve(existsSync(`/proc/${String(pid)}`) ? undefined : true), 10_000, 50);
      const offline = await timeUntil('the probe to see san offline', killedAt, async () => {
        const b = await san();
        return b.state === 'offline' ? b : undefined;
      }, deadlineMs);
      report('tgt backend offline noticed (tgtd kill -9 → offline)', offline.ms, `probeIntervalMs ${String(SHIPPED.probeIntervalMs)}`);

      await lab.restartTgtd();
      const restartedAt = Date.now();
      const enabled = await timeUntil('the probe to see san enabled again', restartedAt, async () => ((await san()).state === 'enabled' ? true : undefined), deadlineMs);
      report('tgt backend back online (fresh tgtd → enabled)', enabled.ms);
      const healed = await timeUntil('the export to come back', restartedAt, async () => {
        const now = exportOf(await showTargets(lab), iqn);
        return JSON.stringify(now) === JSON.stringify(before) ? now : undefined;
      }, healDeadlineMs);
      report('export back after a tgtd outage (fresh tgtd → export back)', healed.ms, `probeIntervalMs ${String(SHIPPED.probeIntervalMs)} + reconcileIntervalMs ${String(SHIPPED.reconcileIntervalMs)}`);

      expect(await readsPattern(lab, h1, c, 0x3c, 0, 64 * 1024)).toBe(true);
      expect((await readCapacity(lab, h1, c)).stdout.trim()).toBe(String(8 * MiB));
      const events = (await s.api.ok<{ items: StowageEvent[] }>('GET', `/v1/events?resource=${backendId}&after=0`, 200)).items;
      expect(events.filter((e) => e.action === 'probe').map((e) => [e.actor, e.fromState, e.toState])).toEqual([
        ['system', 'enabled', 'offline'],
        ['system', 'offline', 'enabled'],
      ]);
    }, deadlineMs + healDeadlineMs + 120_000);
  });
}
