import { afterAll, beforeAll, describe, it } from 'vitest';
import { ensureBuilt } from '../helpers/server.js';
import { hostsTier } from './hosts-tier.js';
import { MatrixRun, buildMatrix } from './matrix-kit.js';

// The generated kill -9 matrix on postgres for the kinds whose effect lives on hosts (attach, detach, fence, migration start/complete/abort),
// with real agents, QEMU VMs and tgtd: each registered step killed before it, at :done and after it, then restarted; every attachment
// attached or gone, every migration final, the fenced host fenced, tgtd's ACLs/sessions the active grants, no stray stw- node in a VM.
const matrix = await buildMatrix(hostsTier());

describe('kill -9 matrix on postgres: host kinds (real agents, QEMU and tgtd in test/lab)', () => {
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
