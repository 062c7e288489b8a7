import type { DriverCache } from './backends/driver-cache.js';
import { grantCreateHandler, grantRevokeHandler } from './access/access-operations.js';
import { attachHandler, detachHandler } from './attachments/attachment-operations.js';
import type { AttachTimings } from './attachments/attachment-steps.js';
import { fenceHandler } from './attachments/fencing.js';
import { migrationHandlers, type MigrationService } from './attachments/migration-service.js';
import type { OperationHandler } from './operations/handler.js';
import { snapshotCreateHandler, snapshotDeleteHandler, volumeRevertHandler } from './snapshots/snapshot-operations.js';
import type { Store } from './store/store.js';
import type { CommandRunner } from './system/command-runner.js';
import type { SecretBox } from './system/secret-box.js';
import { volumeCreateHandler, volumeDeleteHandler, volumeResizeHandler } from './volumes/volume-operations.js';

/** What the operation handlers need to run their steps. */
export interface OperationHandlerDeps {
  readonly store: Store;
  readonly drivers: DriverCache;
  readonly secrets: SecretBox;
  readonly runner: CommandRunner;
  readonly placementAttempts: number;
  readonly timings: AttachTimings;
  /** The migration service, created after the handlers (it needs the engine they are registered with). */
  readonly migrations: () => MigrationService;
}

/**
 * Every operation kind the server runs, in one list: the server registers exactly these, and the
 * crash-recovery matrix enumerates their kinds and steps from here, so a new kind joins the matrix
 * (and fails its coverage test until it has a scenario) by being added here.
 */
export function operationHandlers(deps: OperationHandlerDeps): OperationHandler[] {
  const { store, drivers, secrets } = deps;
  const volumeDeps = { store, drivers, placementAttempts: deps.placementAttempts, runner: deps.runner };
  const attachDeps = { store, drivers, secrets, timings: deps.timings };
  return [
    volumeCreateHandler(volumeDeps),
    volumeResizeHandler(volumeDeps),
    volumeDeleteHandler(volumeDeps),
    grantCreateHandler({ store, drivers, secrets }),
    grantRevokeHandler({ store, drivers, secrets }),
    snapshotCreateHandler({ store, drivers }),
    snapshotDeleteHandler({ store, drivers }),
    volumeRevertHandler({ store, drivers }),
    attachHandler(attachDeps),
    detachHandler(attachDeps),
    fenceHandler(attachDeps),
    ...migrationHandlers(attachDeps, deps.migrations),
  ];
}
