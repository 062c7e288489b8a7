import { afterAll, beforeAll, describe, it } from 'vitest';
import { ensureBuilt } from '../helpers/server.js';
import { MatrixRun, buildMatrix, type Tier } from './matrix-kit.js';

/**
 * Declares one file's share of the generated kill -9 matrix: the tier's kinds on one store, a test
 * per round (every kind paused at one of its cells, the server killed once, restarted, checked).
 */
export async function describeKillMatrix<W>(dialect: 'sqlite' | 'postgres', what: string, tier: Tier<W>): Promise<void> {
  const matrix = await buildMatrix(tier);
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
