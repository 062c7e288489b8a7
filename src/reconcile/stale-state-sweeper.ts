import type { Logger } from 'pino';
import { VOLUME_STATE_TABLE } from '../core/states.js';
import type { Repositories } from '../store/repositories.js';
import { transition } from '../store/transition.js';
import type { Store } from '../store/store.js';

/**
 * Safety net for the rule "no resource stays in a transitional state": a volume in a transitional
 * state (`TRANSITIONAL_VOLUME_STATES`) must be owned by an unfinished operation. Operations normally guarantee
 * this (same transaction); anything left without one (a bug, or a manual database edit) is moved
 * to its table's orphan state (`error`) with the reason, never silently to `available`.
 */
export class StaleStateSweeper {
  constructor(private readonly store: Store, private readonly repos: Repositories, private readonly logger: Logger) {}

  async sweep(): Promise<number> {
    const orphans = await this.repos.volumes.listTransitionalWithoutOperation(this.store.db);
    for (const v of orphans) {
      await this.store.transaction(async (trx) => {
        const orphan = VOLUME_STATE_TABLE[v.state].resume?.orphan ?? 'error';
        await transition(trx, 'volume', {
          id: v.id, tenantId: v.tenant_id, to: orphan, onlyFrom: [v.state],
          patch: { state_reason: `was ${v.state} with no operation in charge; check the backend and delete or retry` },
          event: { actor: 'system', action: 'sweep', resourceName: v.name, message: `volume ${v.name} was ${v.state} with no operation in charge` },
        });
      });
      this.logger.warn({ volume: v.id, state: v.state }, 'moved a volume without an operation out of its transitional state');
    }
    return orphans.length;
  }
}
