import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Most test files wait on real processes (servers, tgtd, QEMU, timers on their shipped defaults),
// not on the CPU, and every file has its own lab, data dirs and databases; so files run several at a
// time even on a 2-core machine (vitest's own default there is one at a time).
// STOWAGE_TEST_WORKERS overrides the count.
const workers = Number(process.env.STOWAGE_TEST_WORKERS ?? Math.max(3, availableParallelism()));

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
    maxWorkers: workers,
    globalSetup: ['test/global-setup.ts'],
  },
});
