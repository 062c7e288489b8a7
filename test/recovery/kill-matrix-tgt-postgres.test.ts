import { afterAll, beforeAll, describe, it } from 'vitest';
import { ensureBuilt } from '../helpers/server.js';
import { tgtTier } from './tgt-tier.js';
import { MatrixRun, buildMatrix } from './matrix-kit.js';

// The generated kill -9 matrix on postgres for the kinds whose effect lives in tgtd (grants, volumes on tgt): each registered step
// of each kind, killed before it, at :done and after it then restarted; tgtd's targets, ACLs and CHAP accounts must match the store.
const matrix = await buildMatrix(tgtTier);

describe('kill -9 matrix on postgres: tgt-backed kinds (real tgtd in test/lab)', () => {
  const run = new MatrixRun('postgres', matrix);
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
