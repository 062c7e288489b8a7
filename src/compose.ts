import { join } from 'node:path';
import type { Logger } from 'pino';
import { AccessService } from './access/access-service.js';
import { AttachmentService } from './attachments/attachment-service.js';
import { FencingService } from './attachments/fencing.js';
import { MigrationService } from './attachments/migration-service.js';
import { ControlIdentities } from './nodes/control-identities.js';
import { RemoteDrivers } from './nodes/remote-driver.js';
import { StoreNodeChannels } from './nodes/store-node-channels.js';
import { BackendService } from './backends/backend-service.js';
import { DriverCache } from './backends/driver-cache.js';
import { ClassService } from './classes/class-service.js';
import type { AppDeps } from './api/app.js';
import type { Config } from './config/config.js';
import { DRIVER_FACTORIES } from './drivers/driver-factories.js';
import { DriverRegistry } from './drivers/sdk/registry.js';
import { EventService } from './events/event-service.js';
import { HostService } from './hosts/host-service.js';
import { AgentCredentialService } from './hosts/agent-credentials.js';
import { resolveApiCertificate } from './api/api-certificate.js';
import { NodeService } from './nodes/node-service.js';
import { operationHandlers } from './operation-handlers.js';
import { OperationEngine } from './operations/engine.js';
import { Failpoints } from './operations/failpoints.js';
import { OperationService } from './operations/operation-service.js';
import { BackendActivity } from './reconcile/backend-activity.js';
import { ClaimSweeper } from './reconcile/claim-sweeper.js';
import { ExportReconciler } from './reconcile/export-reconciler.js';
import { EXPORT_WATCH_CHECK_TIMEOUT_MS, ExportWatch } from './reconcile/export-watch.js';
import { HostMonitor } from './reconcile/host-monitor.js';
import { NodeMonitor } from './nodes/node-monitor.js';
import { RetentionSweeper, retentionPolicy } from './reconcile/retention-sweeper.js';
import { StaleStateSweeper } from './reconcile/stale-state-sweeper.js';
import { SnapshotService } from './snapshots/snapshot-service.js';
import { createRepositories, type Repositories } from './store/repositories.js';
import type { Store } from './store/store.js';
import { SpawnCommandRunner, type CommandRunner } from './system/command-runner.js';
import { SecretBox } from './system/secret-box.js';
import { TenantService } from './tenants/tenant-service.js';
import { QuotaService } from './quotas/quota-service.js';
import { VolumeService } from './volumes/volume-service.js';

export { DRIVER_FACTORIES };

/**
 * The whole control plane, wired but idle: every repository and service exists once, the operation
 * handlers are registered with the engine, and nothing runs (no listener, no engine workers, no
 * background loops). `startServer` builds one and starts it; service tests build one on a store of
 * their own and call the services directly.
 */
export interface ControlPlane extends Omit<AppDeps, 'idempotencyKeys' | 'bodyLimitBytes' | 'version'> {
  readonly config: Config;
  readonly repos: Repositories;
  readonly failpoints: Failpoints;
  readonly runner: CommandRunner;
  readonly registry: DriverRegistry;
  readonly drivers: DriverCache;
  readonly secrets: SecretBox;
  /** The control plane's own TLS identities (the key nodes pin, the API's certificate): one instance. */
  readonly identities: ControlIdentities;
  /** Which backends are busy with a driver call, so probes and reconciles do not pile onto them. */
  readonly activity: BackendActivity;
  /** Background passes (run by the server's loops; tests call one pass at a time). */
  readonly exports: ExportReconciler;
  readonly exportWatch: ExportWatch;
  readonly staleStates: StaleStateSweeper;
  readonly claimSweeper: ClaimSweeper;
  readonly hostMonitor: HostMonitor;
  /** How driver calls reach storage nodes. */
  readonly nodeChannels: StoreNodeChannels;
  /** Node heartbeats, states and full syncs (run by the server's `node-monitor` loop). */
  readonly nodeMonitor: NodeMonitor;
}

/**
 * Builds the control plane on an open (migrated) store: repositories once, each service once with
 * what it depends on passed in, and every operation handler registered. Starts nothing; the caller
 * owns the store and, once started, stops the engine and closes the drivers.
 */
export async function composeControlPlane(config: Config, store: Store, logger: Logger): Promise<ControlPlane> {
  const repos = createRepositories();
  const failpoints = config.failpoints ? new Failpoints(config.failpoints, join(config.dataDir, 'failpoints.reached')) : Failpoints.none();
  const registry = new DriverRegistry(DRIVER_FACTORIES);
  const runner = new SpawnCommandRunner();
  const secrets = SecretBox.fromKeyFile(config.secretKeyFile);
  const identities = new ControlIdentities(store, repos.nodes, secrets, runner);
  const nodeChannels = new StoreNodeChannels(store, repos, identities, config);
  const drivers = new DriverCache(registry, { runner, dataDir: config.dataDir }, new RemoteDrivers(nodeChannels));
  const engine = new OperationEngine(store, logger, failpoints, {
    leaseMs: config.operationLeaseMs, pollMs: config.operationPollMs, concurrency: config.operationConcurrency,
    stepAttempts: config.stepAttempts, retryBaseMs: config.retryBaseMs, waitRetryMaxMs: config.waitRetryMaxMs,
  }, repos.operations);
  const activity = new BackendActivity();
  const tenants = new TenantService(store, repos, engine);
  const operations = new OperationService(store, repos, engine);
  const events = new EventService(store, repos);
  const backends = new BackendService(store, repos, registry, drivers, engine, logger, activity);
  const classes = new ClassService(store, repos, engine);
  const quotas = new QuotaService(store, repos, tenants, classes);
  const volumes = new VolumeService(store, repos, engine, classes);
  const hosts = new HostService(store, repos, engine);
  const agentCredentials = new AgentCredentialService(store, repos, hosts, async () => (await resolveApiCertificate(config, identities))?.fingerprint ?? null, config.nodeEnrollTtlMs);
  const access = new AccessService(store, repos, engine, volumes, hosts, secrets);
  const snapshots = new SnapshotService(store, repos, engine, volumes, drivers);
  const timings = { connectTimeoutMs: config.connectTimeoutMs, disconnectTimeoutMs: config.disconnectTimeoutMs, hostDownAfterMs: config.hostDownAfterMs };
  const attachments = new AttachmentService(store, repos, engine, volumes, hosts, secrets, { ...timings, heartbeatIntervalMs: config.agentHeartbeatMs });
  const fencing = new FencingService(store, repos, engine, hosts, attachments);
  const migrations = new MigrationService(store, repos, engine, hosts, attachments);
  const nodes = new NodeService(store, repos, engine, identities, config, (id) => nodeMonitor.inFlightOf(id));
  for (const h of operationHandlers({ store, repos, drivers, secrets, runner, placementAttempts: config.placementAttempts, timings, migrations: () => migrations })) engine.register(h);
  const exports = new ExportReconciler(store, repos, drivers, secrets, logger, config.reconcileDriverTimeoutMs, activity);
  const exportWatch = new ExportWatch(store, repos, drivers, exports, logger, { watchMs: config.exportWatchMs, maxBackoffMs: config.reconcileIntervalMs, checkTimeoutMs: EXPORT_WATCH_CHECK_TIMEOUT_MS });
  const staleStates = new StaleStateSweeper(store, repos, logger);
  const claimSweeper = new ClaimSweeper(store, repos, logger);
  const retention = new RetentionSweeper(store, repos, retentionPolicy(config), logger);
  const hostMonitor = new HostMonitor(store, repos, config.hostDownAfterMs, logger);
  const nodeMonitor = new NodeMonitor(store, repos, nodeChannels, backends, exports, drivers, config, logger);
  return Object.freeze({
    config, store, logger, repos, failpoints, runner, registry, drivers, secrets, identities, activity, engine, tenants, quotas, operations, events,
    waitHolds: { perTenant: config.waitHoldsPerTenant, total: config.waitHoldsTotal },
    backends, classes, volumes, hosts, agentCredentials, access, snapshots, attachments, fencing, migrations, nodes,
    exports, exportWatch, staleStates, claimSweeper, retention, hostMonitor, nodeChannels, nodeMonitor,
  });
}
