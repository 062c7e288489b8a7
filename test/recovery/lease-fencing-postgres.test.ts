import { afterEach, beforeAll, describe, it } from 'vitest';
import { ensureBuilt, killAllSpawned } from '../helpers/server.js';
import { cleanupLeaseRuns, runStaleReplicaCase, STALE_CASES } from './lease-fencing-kit.js';

// Issue 9, point 4: a replica frozen past its lease while another takes over and finishes must
// change nothing once it wakes up — two `serve` replicas on one PostgreSQL database.
describe('a stale replica after a takeover on postgres', () => {
  beforeAll(async () => {
    await ensureBuilt();
  }, 300_000);
  afterEach(async () => {
    await killAllSpawned();
    cleanupLeaseRuns();
  });

  it.each(STALE_CASES)('changes nothing when it wakes: %s', async (c) => {
    await runStaleReplicaCase('postgres', c);
  }, 600_000);
});
