import type { Logger } from 'pino';
import { hostIsUp } from '../attachments/attachment-steps.js';
import { HostRepository } from '../store/access-repository.js';
import { EventRepository } from '../store/event-repository.js';
import { nowIso } from '../store/json.js';
import type { Store } from '../store/store.js';

/** Marks hosts `down` when their agent stops reporting (fenced hosts stay fenced). */
export class HostMonitor {
  private readonly hosts = new HostRepository();
  private readonly events = new EventRepository();

  constructor(private readonly store: Store, private readonly hostDownAfterMs: number, private readonly logger: Logger) {}

  async check(): Promise<void> {
    for (const h of await this.hosts.list(this.store.db)) {
      if (h.state !== 'up' || hostIsUp(h, this.hostDownAfterMs)) continue;
      await this.store.transaction(async (trx) => {
        const r = await trx.updateTable('hosts').set({ state: 'down', updated_at: nowIso() }).where('id', '=', h.id).where('state', '=', 'up').executeTakeFirst();
        if (Number(r.numUpdatedRows) === 0) return;
        await this.events.append(trx, { tenantId: h.tenant_id, actor: 'system', resourceType: 'host', resourceId: h.id, resourceName: h.name, action: 'down', from: 'up', to: 'down', message: `host ${h.name}'s agent stopped reporting (last at ${h.agent_heartbeat_at ?? 'never'})` });
      });
      this.logger.warn({ host: h.name }, 'host is down');
    }
  }
}
