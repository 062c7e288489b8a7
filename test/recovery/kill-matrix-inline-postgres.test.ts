import { afterAll, beforeAll, describe, it } from 'vitest';
import { ensureBuilt } from '../helpers/server.js';
import { InlineRun, inlineCells } from './inline-tier.js';

// The kill -9 matrix on postgres for the operations recorded inline (one transaction, no steps): each
// inline kind killed inside its transaction just before the commit and right after it, then restarted.
describe('kill -9 matrix on postgres: inline-recorded kinds', () => {
  const run = new InlineRun('postgres');
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
