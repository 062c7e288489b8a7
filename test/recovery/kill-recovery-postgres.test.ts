import { afterEach, beforeAll, describe, it } from 'vitest';
import { ensureBuilt, killAllSpawned } from '../helpers/server.js';
import { KILL_STYLES, RECOVERY_CASES, cleanupRuns, runRecoveryCase } from './recovery-kit.js';

// kill -9 recovery of the real built server (node dist/main.js serve) on PostgreSQL: every crash point, both kill styles.
describe('kill -9 recovery on postgres', () => {
  beforeAll(async () => {
    await ensureBuilt();
  });
  afterEach(async () => {
    await killAllSpawned();
    cleanupRuns();
  });

  describe.each(RECOVERY_CASES)('at $failpoint', (c) => {
    it.each(KILL_STYLES)('finishes the operation after a %s', async (style) => {
      await runRecoveryCase('postgres', c, style);
    });
  });
});
