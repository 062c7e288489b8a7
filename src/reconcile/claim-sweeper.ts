import type { Logger } from 'pino';
import { DEFAULT_TENANT_ID } from '../core/ids.js';
import { formatSize } from '../core/sizes.js';
import type { Store } from '../store/store.js';
import type { Repositories } from '../store/repositories.js';

/** Finished claims are kept this long for inspection, then deleted. */
const FINISHED_CLAIM_RETENTION_MS = 24 * 3_600_000;

/**
 * Releases capacity claims nobody will finish: claims whose operation has already finished (a bug
 * or a crash between steps), and expired claims with no queued or running operation (a crash before
 * the operation existed, or a manual database edit). A claim of a live operation is left alone: the
 * engine resumes that operation, which commits or releases it. Also purges old finished claims.
 */
export class ClaimSweeper {
  constructor(private readonly store: Store, private readonly repos: Repositories, private readonly logger: Logger) {}

  /** One pass; returns how many claims it released. */
  async sweep(now: Date = new Date()): Promise<number> {
    const stale = await this.repos.claims.listStale(this.store.db, now.toISOString());
    let released = 0;
    for (const c of stale) {
      const done = await this.store.transaction(async (trx) => {
        if (!(await this.repos.claims.releaseById(trx, c.id))) return false;
        await this.repos.events.append(trx, {
          tenantId: DEFAULT_TENANT_ID, actor: 'system', resourceType: c.resource_type, resourceId: c.resource_id, action: 'claim-released',
          message: `released a stale claim of ${formatSize(Number(c.bytes))} on backend ${c.backend_id} (operation ${c.operation_id ?? 'none'} is not running)`,
          details: { claimId: c.id, backendId: c.backend_id, bytes: Number(c.bytes) }, operationId: c.operation_id,
        });
        return true;
      });
      if (done) {
        released++;
        this.logger.warn({ claim: c.id, backend: c.backend_id, resource: c.resource_id, operation: c.operation_id }, 'released a stale capacity claim');
      }
    }
    await this.repos.claims.purgeFinished(this.store.db, new Date(now.getTime() - FINISHED_CLAIM_RETENTION_MS).toISOString());
    return released;
  }
}
