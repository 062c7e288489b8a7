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
import { Failpoints } from './operations/failpoints.js';
import { ClaimSweeper } from './reconcile/claim-sweeper.js';
import { StaleStateSweeper } from './reconcile/stale-state-sweeper.js';
import { BackendRepository } from './store/backend-repository.js';
import { TenantRepository } from './store/tenant-repository.js';
import { openStore, type Store } from './store/store.js';
import { SpawnCommandRunner } from './system/command-runner.js';
import { ensurePrivateDir } from './system/private-files.js';
import { VolumeService } from './volumes/volume-service.js';
import { AccessService } from './access/access-service.js';
import { grantCreateHandler, grantRevokeHandler } from './access/access-operations.js';
import { HostService } from './hosts/host-service.js';
import { ExportReconciler } from './reconcile/export-reconciler.js';
import { SnapshotService } from './snapshots/snapshot-service.js';
import { snapshotCreateHandler, snapshotDeleteHandler, volumeRevertHandler } from './snapshots/snapshot-operations.js';
import { SecretBox } from './system/secret-box.js';
import { AttachmentService } from './attachments/attachment-service.js';
import { attachHandler, detachHandler } from './attachments/attachment-operations.js';
import { FencingService, fenceHandler } from './attachments/fencing.js';
import { MigrationService, migrationHandlers } from './attachments/migration-service.js';
import { HostMonitor } from './reconcile/host-monitor.js';
import { volumeCreateHandler, volumeDeleteHandler, volumeResizeHandler } from './volumes/volume-operations.js';

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
  const opDeps = { store, drivers, placementAttempts: config.placementAttempts, runner };
  engine.register(volumeCreateHandler(opDeps));
  engine.register(volumeResizeHandler(opDeps));
  engine.register(volumeDeleteHandler(opDeps));
  const secrets = SecretBox.fromKeyFile(config.secretKeyFile);
  engine.register(grantCreateHandler({ store, drivers, secrets }));
  engine.register(grantRevokeHandler({ store, drivers, secrets }));
  engine.register(snapshotCreateHandler({ store, drivers }));
  engine.register(snapshotDeleteHandler({ store, drivers }));
  engine.register(volumeRevertHandler({ store, drivers }));
  const backends = new BackendService(store, registry, drivers, engine, logger);
  const volumes = new VolumeService(store, engine);
  const hosts = new HostService(store, engine);
  const access = new AccessService(store, engine, volumes, hosts, secrets);
  const snapshots = new SnapshotService(store, engine, volumes, drivers);
  const exports = new ExportReconciler(store, drivers, secrets, logger);
  const timings = { connectTimeoutMs: config.connectTimeoutMs, disconnectTimeoutMs: config.disconnectTimeoutMs, hostDownAfterMs: config.hostDownAfterMs };
  const attachDeps = { store, drivers, secrets, timings };
  const attachments = new AttachmentService(store, engine, volumes, hosts, secrets, { ...timings, heartbeatIntervalMs: config.agentHeartbeatMs });
  const fencing = new FencingService(store, engine, hosts, attachments);
  const migrations = new MigrationService(store, engine, hosts, attachments);
  engine.register(attachHandler(attachDeps));
  engine.register(detachHandler(attachDeps));
  engine.register(fenceHandler(attachDeps));
  for (const h of migrationHandlers(attachDeps, () => migrations)) engine.register(h);
  const hostMonitor = new HostMonitor(store, config.hostDownAfterMs, logger);
  const sweeper = new StaleStateSweeper(store, logger);

  await bootstrap(store, config, backends, logger);
  const app = await buildApp({ store, engine, backends, volumes, hosts, access, snapshots, attachments, fencing, migrations, logger, bodyLimitBytes: config.bodyLimitBytes, version: packageVersion() });
  const address = await app.listen({ host: config.host, port: config.port });
  await sweeper.sweep();
  engine.start();
  backends.startProbes(config.probeIntervalMs);
  sweeper.start(config.reconcileIntervalMs);
  void exports.reconcile();
  exports.start(config.reconcileIntervalMs);
  hostMonitor.start(Math.max(100, Math.floor(config.hostDownAfterMs / 3)));
  const claimSweeper = ClaimSweeper.start(store, logger, config.reconcileIntervalMs);
  logger.info({ url: address, store: store.dialect, dataDir: config.dataDir }, 'stowage is serving');

  let stopping: Promise<void> | null = null;
  return {
    url: address,
    store,
    app,
    stop: () => {
      stopping ??= (async () => {
        backends.stopProbes();
        sweeper.stop();
        await exports.stop();
        hostMonitor.stop();
        claimSweeper.stop();
        await app.close();
        await engine.stop();
        await drivers.closeAll();
        await store.close();
      })();
      return stopping;
    },
  };
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
