import type { Logger } from 'pino';
import { transition } from '../store/transition.js';
import { hostIsUp } from '../attachments/attachment-steps.js';
import type { Store } from '../store/store.js';
import type { Repositories } from '../store/repositories.js';

/** Marks hosts `down` when their agent stops reporting (fenced hosts stay fenced). */
export class HostMonitor {
  constructor(private readonly store: Store, private readonly repos: Repositories, private readonly hostDownAfterMs: number, private readonly logger: Logger) {}

  async check(): Promise<void> {
    for (const h of await this.repos.hosts.list(this.store.db)) {
      if (h.state !== 'up' || hostIsUp(h, this.hostDownAfterMs)) continue;
      await this.store.transaction(async (trx) => {
        await transition(trx, 'host', {
          id: h.id, tenantId: h.tenant_id, to: 'down', onlyFrom: ['up'],
          event: { actor: 'system', action: 'down', resourceName: h.name, message: `host ${h.name}'s agent stopped reporting (last at ${h.agent_heartbeat_at ?? 'never'})` },
        });
      });
      this.logger.warn({ host: h.name }, 'host is down');
    }
  }
}
