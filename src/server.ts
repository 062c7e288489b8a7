import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { buildApp } from './api/app.js';
import { BackendService } from './backends/backend-service.js';
import { DriverCache } from './backends/driver-cache.js';
import type { Config } from './config/config.js';
import { DEFAULT_TENANT_ID, newId } from './core/ids.js';
import { btrfsDriverFactory } from './drivers/btrfs/btrfs-driver.js';
import { dirDriverFactory } from './drivers/dir/dir-driver.js';
import { tgtDriverFactory } from './drivers/tgt/tgt-driver.js';
import { DriverRegistry } from './drivers/sdk/registry.js';
import type { DriverFactory } from './drivers/sdk/types.js';
import { OperationEngine } from './operations/engine.js';
import { operationHandlers } from './operation-handlers.js';
import { Failpoints } from './operations/failpoints.js';
import { ClaimSweeper } from './reconcile/claim-sweeper.js';
import { StaleStateSweeper } from './reconcile/stale-state-sweeper.js';
import { BackendRepository } from './store/backend-repository.js';
import { TenantRepository } from './store/tenant-repository.js';
import { createRepositories } from './store/repositories.js';
import { openStore, type Store } from './store/store.js';
import { SpawnCommandRunner } from './system/command-runner.js';
import { ensurePrivateDir } from './system/private-files.js';
import { VolumeService } from './volumes/volume-service.js';
import { AccessService } from './access/access-service.js';
import { HostService } from './hosts/host-service.js';
import { ExportReconciler } from './reconcile/export-reconciler.js';
import { SnapshotService } from './snapshots/snapshot-service.js';
import { SecretBox } from './system/secret-box.js';
import { AttachmentService } from './attachments/attachment-service.js';
import { FencingService } from './attachments/fencing.js';
import { MigrationService } from './attachments/migration-service.js';
import { HostMonitor } from './reconcile/host-monitor.js';
import { backgroundLoops } from './reconcile/background-loops.js';
import { settlesWithin, type BackgroundLoop } from './system/background-loop.js';
import { BackendActivity } from './reconcile/backend-activity.js';

/** Every driver this build knows, by URI scheme. */
export const DRIVER_FACTORIES: readonly DriverFactory[] = [dirDriverFactory, btrfsDriverFactory, tgtDriverFactory];

/** The package version, for /healthz and OpenAPI. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** A running control plane: its URL and how to stop it. */
export interface RunningServer {
  readonly url: string;
  readonly store: Store;
  /** The Fastify app itself, for in-process `inject()` tests. */
  readonly app: FastifyInstance;
  stop(): Promise<void>;
}

/**
 * Starts `stowage serve`: opens (and migrates) the store, bootstraps the default tenant, the admin
 * token and the `local` backend on first start, then serves the API and runs workers and probes.
 */
export async function startServer(config: Config, logger: Logger = pino({ level: config.logLevel })): Promise<RunningServer> {
  ensurePrivateDir(config.dataDir);
  const store = await openStore(config.databaseUrl);
  const failpoints = config.failpoints ? new Failpoints(config.failpoints, join(config.dataDir, 'failpoints.reached')) : Failpoints.none();
  const registry = new DriverRegistry(DRIVER_FACTORIES);
  const runner = new SpawnCommandRunner();
  const drivers = new DriverCache(registry, { runner, dataDir: config.dataDir });
  const engine = new OperationEngine(store, logger, failpoints, {
    leaseMs: config.operationLeaseMs, pollMs: config.operationPollMs, concurrency: config.operationConcurrency,
    stepAttempts: config.stepAttempts, retryBaseMs: config.retryBaseMs,
  });
  const secrets = SecretBox.fromKeyFile(config.secretKeyFile);
  const activity = new BackendActivity();
  const backends = new BackendService(store, registry, drivers, engine, logger, activity);
  const volumes = new VolumeService(store, engine);
  const hosts = new HostService(store, engine);
  const access = new AccessService(store, engine, volumes, hosts, secrets);
  const snapshots = new SnapshotService(store, engine, volumes, drivers);
  const exports = new ExportReconciler(store, drivers, secrets, logger, config.reconcileDriverTimeoutMs, activity);
  const timings = { connectTimeoutMs: config.connectTimeoutMs, disconnectTimeoutMs: config.disconnectTimeoutMs, hostDownAfterMs: config.hostDownAfterMs };
  const attachments = new AttachmentService(store, engine, volumes, hosts, secrets, { ...timings, heartbeatIntervalMs: config.agentHeartbeatMs });
  const fencing = new FencingService(store, engine, hosts, attachments);
  const migrations = new MigrationService(store, engine, hosts, attachments);
  for (const h of operationHandlers({ store, repos: createRepositories(), drivers, secrets, runner, placementAttempts: config.placementAttempts, timings, migrations: () => migrations })) engine.register(h);
  const hostMonitor = new HostMonitor(store, config.hostDownAfterMs, logger);
  const sweeper = new StaleStateSweeper(store, logger);

  await bootstrap(store, config, backends, logger);
  const app = await buildApp({ store, engine, backends, volumes, hosts, access, snapshots, attachments, fencing, migrations, logger, bodyLimitBytes: config.bodyLimitBytes, version: packageVersion() });
  const address = await app.listen({ host: config.host, port: config.port });
  await sweeper.sweep();
  engine.start();
  const claimSweeper = new ClaimSweeper(store, logger);
  const loops = backgroundLoops({ backends, exports, staleStates: sweeper, claims: claimSweeper, hostMonitor }, config, failpoints, logger);
  for (const l of loops) l.start();
  logger.info({ url: address, store: store.dialect, dataDir: config.dataDir }, 'stowage is serving');

  let stopping: Promise<void> | null = null;
  return {
    url: address,
    store,
    app,
    stop: () => {
      stopping ??= drainAndClose({ app, engine, loops, drivers, store }, config.shutdownDrainMs, logger);
      return stopping;
    },
  };
}

/** What a graceful stop takes apart, outermost first. */
interface Running {
  readonly app: FastifyInstance;
  readonly engine: OperationEngine;
  readonly loops: readonly BackgroundLoop[];
  readonly drivers: DriverCache;
  readonly store: Store;
}

/**
 * Stops taking work (the listener closes, the engine claims nothing new, no loop starts a pass),
 * lets running operation steps, background passes and requests finish for up to `drainMs` in total,
 * then closes the store: nothing that could still touch it is left running unless it outlived the
 * deadline and its abort. An operation cut short resumes after its lease, here or on a replica.
 */
async function drainAndClose(r: Running, drainMs: number, logger: Logger): Promise<void> {
  const deadline = Date.now() + drainMs;
  const left = (): number => Math.max(0, deadline - Date.now());
  const closingApp = r.app.close();
  const [, ...passes] = await Promise.all([r.engine.stop(left()), ...r.loops.map((l) => l.stop(left()))]);
  for (const p of passes) if (!p.drained) logger.warn({ loop: p.name }, 'a background pass did not end before the store was closed');
  if (!(await settlesWithin(closingApp, left()))) {
    logger.warn({ drainMs }, 'requests still open at the drain deadline; closing their connections');
    r.app.server.closeAllConnections();
    await settlesWithin(closingApp, 1000);
  }
  await r.drivers.closeAll();
  await r.store.close();
  logger.info({ awaited: passes.filter((p) => p.wasRunning).map((p) => p.name) }, 'stopped; the store is closed');
}

async function bootstrap(store: Store, config: Config, backends: BackendService, logger: Logger): Promise<void> {
  const tenants = new TenantRepository();
  await tenants.ensureDefaultTenant(store.db);
  if ((await tenants.countTokens(store.db)) === 0) {
    const token = `stw_${randomBytes(24).toString('base64url')}`;
    await tenants.insertToken(store.db, { id: newId('token'), tenantId: DEFAULT_TENANT_ID, name: 'admin', token, role: 'admin' });
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`;
    writeCliConfig(config.cliConfigPath, { url, token });
    // Printed once, on purpose: this is the only time the token exists outside its hash.
    process.stdout.write(`\nAdmin API token (shown once; also written to ${config.cliConfigPath}):\n  ${token}\n\n`);
  }
  if (config.defaultBackend && (await new BackendRepository().listAll(store.db)).length === 0) {
    const dir = join(config.dataDir, 'volumes');
    ensurePrivateDir(dir);
    const { backend } = await backends.create({ name: 'local', driver: `dir://${dir}` }, 'system');
    logger.info({ backend: backend.name, state: backend.state }, 'created the default local backend');
  }
}

/** Writes the CLI's config (API URL and token) readable only by this user. */
export function writeCliConfig(path: string, cfg: { url: string; token: string }): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
}
