import { freshPostgresUrl } from './pg.js';
import { ApiClient, cliConfigPathOf, makeTempDir, readToken, spawnServer, type SpawnedServer } from './server.js';

/** Two `stowage serve` processes sharing one fresh PostgreSQL database, and an admin client of each. */
export interface TwoReplicas {
  readonly a: SpawnedServer;
  readonly b: SpawnedServer;
  readonly apiA: ApiClient;
  readonly apiB: ApiClient;
  /** Their data dirs: the caller removes them (after killAllSpawned) when the test ends. */
  readonly dirs: readonly string[];
}

/**
 * Starts two replicas on a fresh database named after `label`. The first start writes the admin
 * token; the second finds it in the shared database, so one token serves both.
 */
export async function startTwoReplicas(label: string, env?: Readonly<Record<string, string>>): Promise<TwoReplicas> {
  const databaseUrl = await freshPostgresUrl(label);
  const dirs = [makeTempDir(`stowage-${label}-a-`), makeTempDir(`stowage-${label}-b-`)] as const;
  const a = await spawnServer({ dataDir: dirs[0], databaseUrl, ...(env ? { env } : {}) });
  const b = await spawnServer({ dataDir: dirs[1], databaseUrl, ...(env ? { env } : {}) });
  const token = readToken(cliConfigPathOf(dirs[0]));
  return { a, b, apiA: new ApiClient(a.url, token), apiB: new ApiClient(b.url, token), dirs };
}
