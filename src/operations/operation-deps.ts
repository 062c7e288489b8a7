import type { AttachTimings } from '../attachments/attachment-steps.js';
import type { MigrationService } from '../attachments/migration-service.js';
import type { DriverCache } from '../backends/driver-cache.js';
import type { Repositories } from '../store/repositories.js';
import type { Store } from '../store/store.js';
import type { CommandRunner } from '../system/command-runner.js';
import type { SecretBox } from '../system/secret-box.js';

/** What the operation kinds need to run their steps; the composition root builds it once. */
export interface OperationDeps {
  readonly store: Store;
  readonly repos: Repositories;
  readonly drivers: DriverCache;
  readonly secrets: SecretBox;
  /** Runs qemu-img for host-side copies (clones a backend cannot offload). */
  readonly runner: CommandRunner;
  /** Backends tried for one create before it fails. */
  readonly placementAttempts: number;
  readonly timings: AttachTimings;
  /** The migration service, created after the handlers (it needs the engine they are registered with). */
  readonly migrations: () => MigrationService;
}
