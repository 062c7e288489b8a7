import { afterAll, afterEach, beforeAll, describe, it } from 'vitest';
import { ensureBuilt, killAllSpawned } from '../helpers/server.js';
import { InlineRun, inlineCells } from './inline-tier.js';
import { cleanupLeaseRuns, runStaleReplicaCase, STALE_CASES } from './lease-fencing-kit.js';
import { MatrixRun, buildMatrix, type Tier } from './matrix-kit.js';

/**
 * Declares one file's share of the generated kill -9 matrix: the tier's kinds on one store, a test
 * per round (every kind paused at one of its cells, the server killed once, restarted, checked).
 */
export async function describeKillMatrix<W>(dialect: 'sqlite' | 'postgres', what: string, tier: Tier<W>): Promise<void> {
  const matrix = await buildMatrix(onlyKinds(tier, process.env.STOWAGE_MATRIX_KINDS));
  describe(`kill -9 matrix on ${dialect}: ${what}`, () => {
    const run = new MatrixRun(dialect, matrix);
    beforeAll(async () => {
      await ensureBuilt();
      await run.setUp();
    });
    afterAll(async () => {
      await run.tearDown();
    });

    it.each(matrix.rounds.map((cells, i) => ({ i, round: String(i), points: cells.map((c) => c.failpoint).join(', ') })))('round $round: killed at $points', async ({ i }) => {
      await run.runRound(i);
    });
  });
}

/**
 * The tier restricted to the kinds named in `list` (comma-separated, e.g. STOWAGE_MATRIX_KINDS=tenant.delete
 * to run one kind's cells while working on it); the whole tier when unset. A name the tier does not
 * drive fails at once rather than running nothing.
 */
function onlyKinds<W>(tier: Tier<W>, list: string | undefined): Tier<W> {
  if (list === undefined || list.trim() === '') return tier;
  const wanted = list.split(',').map((k) => k.trim()).filter(Boolean);
  const unknown = wanted.filter((k) => !tier.kinds.includes(k));
  if (unknown.length > 0) throw new Error(`STOWAGE_MATRIX_KINDS names kinds this tier does not drive: ${unknown.join(', ')} (it drives ${tier.kinds.join(', ')})`);
  return { ...tier, kinds: tier.kinds.filter((k) => wanted.includes(k)) };
}

/** The inline kinds' share of the matrix on one store: each killed just before and right after its commit. */
export function describeInlineMatrix(dialect: 'sqlite' | 'postgres'): void {
  describe(`kill -9 matrix on ${dialect}: inline-recorded kinds`, () => {
    const run = new InlineRun(dialect);
    beforeAll(async () => {
      await ensureBuilt();
      await run.setUp();
    });
    afterAll(async () => {
      await run.tearDown();
    });

    it.each(inlineCells())('killed at $failpoint', async (cell) => {
      await run.runCell(cell);
    });
  });
}

/** The lease-fencing cases on one store (SQLite: two replicas on one file; PostgreSQL: on one database). */
export function describeStaleReplicaCases(dialect: 'sqlite' | 'postgres'): void {
  describe(`a stale replica after a takeover on ${dialect}`, () => {
    beforeAll(async () => {
      await ensureBuilt();
    }, 300_000);
    afterEach(async () => {
      await killAllSpawned();
      cleanupLeaseRuns();
    });

    it.each(STALE_CASES)('changes nothing when it wakes: %s', async (c) => {
      await runStaleReplicaCase(dialect, c);
    }, 600_000);
  });
}
