import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/core/schemas/backend-schema.js';
import type { StowageEvent } from '../../src/core/schemas/event-schema.js';
import { ensureBuilt, makeTempDir, removeTempDir } from '../helpers/server.js';
import { SHIPPED, report, startDefaultServer, timeUntil, type DefaultServer } from './defaults-kit.js';

/**
 * The periodic backend probe (`STOWAGE_PROBE_INTERVAL_MS`), which every other tier slows to a
 * minute or more so that it stays out of the way: a dir backend whose directory disappears is
 * noticed as offline by the next probe pass, and is back online by itself once the directory is
 * there again. Nothing here calls the API's refresh: the events prove the probe did it.
 */
export function backendProbeScenario(): void {
  describe('defaults: the periodic probe notices a backend going bad and coming back', () => {
    let dir: string;
    let s: DefaultServer;
    let pool: string;
    let backend: Backend;

    const state = async (): Promise<Backend> => s.api.ok<Backend>('GET', '/v1/backends/flaky', 200);

    beforeAll(async () => {
      await ensureBuilt();
      dir = makeTempDir('stw-defaults-probe-');
      pool = join(dir, 'pool');
      mkdirSync(pool, { mode: 0o700 });
      s = await startDefaultServer({ dataDir: join(dir, 'server') });
      backend = (await s.api.ok<{ backend: Backend }>('POST', '/v1/backends', 201, { body: { name: 'flaky', driver: `dir://${pool}` } })).backend;
      expect(backend.state).toBe('enabled');
    });

    afterAll(async () => {
      await s?.kill9();
      if (dir) removeTempDir(dir);
    });

    // A pass runs every probeIntervalMs, so a change is seen within one interval (plus the probe itself).
    const deadlineMs = 3 * SHIPPED.probeIntervalMs + 30_000;

    it('marks the backend offline when its directory is gone, and enabled again when it is back', async () => {
      rmSync(pool, { recursive: true, force: true });
      const brokenAt = Date.now();
      const offline = await timeUntil('the probe to see flaky offline', brokenAt, async () => {
        const b = await state();
        return b.state === 'offline' ? b : undefined;
      }, deadlineMs);
      report('backend offline noticed (dir removed → offline)', offline.ms, `probeIntervalMs ${String(SHIPPED.probeIntervalMs)}`);
      expect(offline.value.stateReason).toMatch(/^probe failed: /);

      mkdirSync(pool, { mode: 0o700 });
      const fixedAt = Date.now();
      const online = await timeUntil('the probe to see flaky enabled again', fixedAt, async () => {
        const b = await state();
        return b.state === 'enabled' ? b : undefined;
      }, deadlineMs);
      report('backend back online (dir restored → enabled)', online.ms);
      expect(online.value.stateReason).toBeNull();

      // Both changes came from the periodic probe (actor `system`), not from a refresh by an operator.
      const events = (await s.api.ok<{ items: StowageEvent[] }>('GET', `/v1/events?resource=${backend.id}&after=0`, 200)).items;
      expect(events.filter((e) => e.action === 'probe').map((e) => [e.actor, e.fromState, e.toState])).toEqual([
        ['system', 'enabled', 'offline'],
        ['system', 'offline', 'enabled'],
      ]);
    }, 2 * deadlineMs + 60_000);
  });
}
