import type { TestProject } from 'vitest/node';
import { SpawnCommandRunner } from '../src/system/command-runner.js';
import { startPostgres } from './lab/postgres.js';
import { cleanupStaleLabs } from './lab/teardown.js';

declare module 'vitest' {
  /** Values the global setup hands to every test file through `inject()`. */
  export interface ProvidedContext {
    /** Base URL of the run's PostgreSQL server (database `stowage`). */
    pgUrl: string;
  }
}

/**
 * Vitest global setup: reaps labs left by crashed runs, then starts one PostgreSQL for the whole
 * run and provides its URL as `pgUrl` (and STOWAGE_TEST_PG_URL). Returns the teardown.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const runner = new SpawnCommandRunner();
  const stale = await cleanupStaleLabs(runner);
  if (stale.length > 0) console.warn(`lab: could not fully clean up leftovers of earlier runs:\n${stale.join('\n')}`);
  const server = await startPostgres({ runner });
  project.provide('pgUrl', server.url);
  process.env.STOWAGE_TEST_PG_URL = server.url;
  return async () => {
    await server.stop();
  };
}
