import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { createDatabase } from '../lab/postgres.js';

/** Base URL of the test run's PostgreSQL (started by test/global-setup.ts). */
export function testPostgresUrl(): string {
  const provided = inject('pgUrl') as string | undefined;
  if (provided !== undefined && provided !== '') return provided;
  const fromEnv = process.env.STOWAGE_TEST_PG_URL;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  throw new Error('no test PostgreSQL: run tests through vitest (test/global-setup.ts starts it)');
}

/** Creates a uniquely named, empty database on the run's PostgreSQL and returns its URL. */
export async function freshPostgresUrl(prefix = 't'): Promise<string> {
  const safePrefix = prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 20) || 't';
  const name = `${safePrefix}_${String(process.pid)}_${randomBytes(5).toString('hex')}`;
  return createDatabase(testPostgresUrl(), /^[a-z_]/.test(name) ? name : `t_${name}`);
}
