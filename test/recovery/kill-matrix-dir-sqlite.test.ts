import { afterAll, beforeAll, describe, it } from 'vitest';
import { ensureBuilt } from '../helpers/server.js';
import { dirTier } from './dir-tier.js';
import { MatrixRun, buildMatrix } from './matrix-kit.js';

// The generated kill -9 matrix on sqlite for every kind that runs on dir backends: each registered step
// of each kind, killed before it, at :done and after it (and during compensation), then restarted.
const matrix = await buildMatrix(dirTier);

describe('kill -9 matrix on sqlite: dir-backed kinds', () => {
  const run = new MatrixRun('sqlite', matrix);
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
