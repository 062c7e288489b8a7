import { join } from 'node:path';
import type { Logger } from 'pino';
import { AccessService } from '../../src/access/access-service.js';
import { AttachmentService } from '../../src/attachments/attachment-service.js';
import { FencingService } from '../../src/attachments/fencing.js';
import { MigrationService } from '../../src/attachments/migration-service.js';
import { BackendService } from '../../src/backends/backend-service.js';
import { DriverCache } from '../../src/backends/driver-cache.js';
import { ClassService } from '../../src/classes/class-service.js';
import type { Config } from '../../src/config/config.js';
import { btrfsDriverFactory } from '../../src/drivers/btrfs/btrfs-driver.js';
import { dirDriverFactory } from '../../src/drivers/dir/dir-driver.js';
import { DriverRegistry } from '../../src/drivers/sdk/registry.js';
import { tgtDriverFactory } from '../../src/drivers/tgt/tgt-driver.js';
import { HostService } from '../../src/hosts/host-service.js';
import { operationHandlers } from '../../src/operation-handlers.js';
import { OperationEngine } from '../../src/operations/engine.js';
import { Failpoints } from '../../src/operations/failpoints.js';
import { BackendActivity } from '../../src/reconcile/backend-activity.js';
import { SnapshotService } from '../../src/snapshots/snapshot-service.js';
import { createRepositories, type Repositories } from '../../src/store/repositories.js';
import type { Store } from '../../src/store/store.js';
import { SpawnCommandRunner } from '../../src/system/command-runner.js';
import { SecretBox } from '../../src/system/secret-box.js';
import { VolumeService } from '../../src/volumes/volume-service.js';

/** The control plane's services, built once over one store, with nothing started. */
export interface ControlPlane {
  readonly repos: Repositories;
  readonly engine: OperationEngine;
  readonly drivers: DriverCache;
  readonly backends: BackendService;
  readonly volumes: VolumeService;
  readonly classes: ClassService;
  readonly hosts: HostService;
  readonly access: AccessService;
  readonly snapshots: SnapshotService;
  readonly attachments: AttachmentService;
  readonly fencing: FencingService;
  readonly migrations: MigrationService;
}

/**
 * STAND-IN for `composeControlPlane(config, store, logger)` of src/compose.ts, which the compose
 * branch is writing (same signature, same result shape). Until that lands this copies the
 * constructor calls of `startServer` (src/server.ts) and starts nothing: no listener, no workers, no
 * background loops. Delete this file and import the real one once src/compose.ts exists.
 */
export function composeControlPlane(config: Config, store: Store, logger: Logger): ControlPlane {
  const repos = createRepositories();
  const failpoints = config.failpoints ? new Failpoints(config.failpoints, join(config.dataDir, 'failpoints.reached')) : Failpoints.none();
  // The list of src/server.ts's DRIVER_FACTORIES, not imported from there: that would load Fastify and every route.
  const registry = new DriverRegistry([dirDriverFactory, btrfsDriverFactory, tgtDriverFactory]);
  const runner = new SpawnCommandRunner();
  const drivers = new DriverCache(registry, { runner, dataDir: config.dataDir });
  const engine = new OperationEngine(store, logger, failpoints, {
    leaseMs: config.operationLeaseMs, pollMs: config.operationPollMs, concurrency: config.operationConcurrency,
    stepAttempts: config.stepAttempts, retryBaseMs: config.retryBaseMs,
  });
  const secrets = SecretBox.fromKeyFile(config.secretKeyFile);
  const backends = new BackendService(store, registry, drivers, engine, logger, new BackendActivity());
  const volumes = new VolumeService(store, engine);
  const classes = new ClassService(store, engine);
  const hosts = new HostService(store, engine);
  const access = new AccessService(store, engine, volumes, hosts, secrets);
  const snapshots = new SnapshotService(store, engine, volumes, drivers);
  const timings = { connectTimeoutMs: config.connectTimeoutMs, disconnectTimeoutMs: config.disconnectTimeoutMs, hostDownAfterMs: config.hostDownAfterMs };
  const attachments = new AttachmentService(store, engine, volumes, hosts, secrets, { ...timings, heartbeatIntervalMs: config.agentHeartbeatMs });
  const fencing = new FencingService(store, engine, hosts, attachments);
  const migrations = new MigrationService(store, engine, hosts, attachments);
  for (const h of operationHandlers({ store, drivers, secrets, runner, placementAttempts: config.placementAttempts, timings, migrations: () => migrations })) engine.register(h);
  return { repos, engine, drivers, backends, volumes, classes, hosts, access, snapshots, attachments, fencing, migrations };
}
