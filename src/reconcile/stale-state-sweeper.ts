import type { Logger } from 'pino';
import { EventRepository } from '../store/event-repository.js';
import { nowIso } from '../store/json.js';
import type { Store } from '../store/store.js';

const TRANSITIONAL = ['creating', 'resizing', 'reverting', 'deleting'] as const;

/**
 * Safety net for the rule "no resource stays in a transitional state": a volume in creating,
 * resizing or deleting must be owned by an unfinished operation. Operations normally guarantee
 * this (same transaction); anything left without one (a bug, or a manual database edit) is moved
 * to `error` with the reason, never silently to `available`.
 */
export class StaleStateSweeper {
  private readonly events = new EventRepository();

  constructor(private readonly store: Store, private readonly logger: Logger) {}

  async sweep(): Promise<number> {
    const orphans = await this.store.db.selectFrom('volumes').select(['id', 'name', 'state', 'tenant_id'])
      .where('state', 'in', [...TRANSITIONAL])
      .where((eb) => eb.not(eb.exists(
        eb.selectFrom('operations').select('operations.id')
          .whereRef('operations.target_id', '=', 'volumes.id').where('operations.state', 'in', ['queued', 'running']),
      )))
      .execute();
    for (const v of orphans) {
      await this.store.transaction(async (trx) => {
        const r = await trx.updateTable('volumes').set({ state: 'error', state_reason: `was ${v.state} with no operation in charge; check the backend and delete or retry`, updated_at: nowIso() })
          .where('id', '=', v.id).where('state', '=', v.state).executeTakeFirst();
        if (Number(r.numUpdatedRows) === 0) return;
        await this.events.append(trx, {
          tenantId: v.tenant_id, actor: 'system', resourceType: 'volume', resourceId: v.id, resourceName: v.name, action: 'sweep',
          from: v.state, to: 'error', message: `volume ${v.name} was ${v.state} with no operation in charge`,
        });
      });
      this.logger.warn({ volume: v.id, state: v.state }, 'moved a volume without an operation out of its transitional state');
    }
    return orphans.length;
  }
}
