import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { freshPostgresUrl } from '../helpers/pg.js';
import { ensureBuilt, makeTempDir, reachedFailpoints, removeTempDir } from '../helpers/server.js';
import { SHIPPED, report, startDefaultServer, timeUntil, type DefaultServer } from './defaults-kit.js';

const MiB = 1024 ** 2;
const FAILPOINT = 'volume.create/provision:after';

interface Submitted { volume: Volume; operation: Operation }

/**
 * The twin at the shipped operation lease, poll and retry timings of
 * `test/recovery/replica-takeover.test.ts` (whose servers lease for 1 s): two real `stowage serve`
 * replicas on one PostgreSQL database; the one running a volume create is kill -9'd in the middle
 * (paused at a failpoint), and the other finishes the operation once the dead worker's lease expires.
 */
export function replicaLeaseScenario(): void {
  describe('defaults: an expired lease is resumed by another replica', () => {
    let dir: string;
    let a: DefaultServer;
    let b: DefaultServer;

    beforeAll(async () => {
      await ensureBuilt();
      dir = makeTempDir('stw-defaults-lease-');
    });

    afterAll(async () => {
      await a?.kill9();
      await b?.kill9();
      if (dir) removeTempDir(dir);
    });

    // A worker renews every lease/3; after its death the lease runs out within one lease, then a poll finds it.
    const deadlineMs = 3 * (SHIPPED.operationLeaseMs + SHIPPED.operationPollMs) + 30_000;

    it('the surviving replica finishes a create whose worker was killed mid-step', async () => {
      const dataDir = join(dir, 'server');
      const databaseUrl = await freshPostgresUrl('defaults_lease');
      a = await startDefaultServer({ dataDir, databaseUrl, failpoints: `${FAILPOINT}=pause` });
      const submitted = await a.api.ok<Submitted>('POST', '/v1/volumes?wait=false', 202, { body: { name: 'handed-over', sizeBytes: 2 * MiB } });
      await timeUntil(`replica A to reach ${FAILPOINT}`, Date.now(), () => Promise.resolve(reachedFailpoints(dataDir).includes(FAILPOINT) ? true : undefined), 60_000, 100);

      // Replica B joins the same database and data dir (shared secret key and `local` backend).
      b = await startDefaultServer({ dataDir, databaseUrl, cliConfigPath: join(dataDir, 'cli.json') });
      const running = await b.api.ok<Operation>('GET', `/v1/operations/${submitted.operation.id}`, 200);
      expect(running.state).toBe('running');

      await a.kill9();
      const killedAt = Date.now();
      const done = await timeUntil('replica B to finish the operation', killedAt, async () => {
        const o = await b.api.ok<Operation>('GET', `/v1/operations/${submitted.operation.id}`, 200);
        return o.state === 'succeeded' || o.state === 'failed' ? o : undefined;
      }, deadlineMs);
      report('expired lease resumed by another replica (kill -9 → operation done)', done.ms, `operationLeaseMs ${String(SHIPPED.operationLeaseMs)}, operationPollMs ${String(SHIPPED.operationPollMs)}`);

      expect(done.value.state, JSON.stringify(done.value.error)).toBe('succeeded');
      expect(done.value.attempts).toBe(2);
      expect(done.value.stepsDone.map((x) => x.name)).toEqual(['provision', 'activate']);
      const vol = await b.api.ok<Volume>('GET', '/v1/volumes/handed-over', 200);
      expect([vol.state, vol.sizeBytes]).toEqual(['available', 2 * MiB]);
      expect(reachedFailpoints(dataDir)).toEqual([FAILPOINT]);
    }, deadlineMs + 120_000);
  });
}
