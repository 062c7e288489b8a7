import { StowageError } from '../core/errors.js';
import { transition } from '../store/transition.js';
import type { Operation } from '../core/schemas/operation-schema.js';
import type { HostService } from '../hosts/host-service.js';
import type { OperationEngine } from '../operations/engine.js';
import { toOperation } from '../store/operation-repository.js';
import type { Store } from '../store/store.js';
import type { RequestContext } from '../volumes/volume-service.js';
import type { AttachmentService } from './attachment-service.js';
import type { Repositories } from '../store/repositories.js';
import { FENCED_REASON } from './operations/host-fence.js';


export { FENCED_REASON };

/** Fence, unfence and evacuate: the failover side of hosts. */
export class FencingService {
  constructor(private readonly store: Store, private readonly repos: Repositories, private readonly engine: OperationEngine, private readonly hostService: HostService, private readonly attachmentsService: AttachmentService) {}

  async fence(hostRef: string, ctx: RequestContext): Promise<Operation> {
    const h = await this.hostService.resolve(hostRef);
    const op = await this.store.transaction(async (trx) => {
      const active = await this.repos.operations.findActiveForTarget(trx, h.id);
      if (active?.kind === 'host.fence') return active;
      const row = await this.engine.enqueue(trx, { kind: 'host.fence', tenantId: ctx.tenantId, targetType: 'host', targetId: h.id, actor: ctx.actor, idempotencyKey: null, input: {} });
      await this.repos.events.append(trx, { tenantId: ctx.tenantId, actor: ctx.actor, resourceType: 'host', resourceId: h.id, resourceName: h.name, action: 'fencing', from: h.state, to: h.state, message: `fencing host ${h.name}`, operationId: row.id });
      return row;
    });
    this.engine.wake();
    return toOperation(op);
  }

  /** Returns a fenced host to service; its agent brings it up on the next report. */
  async unfence(hostRef: string, ctx: RequestContext): Promise<void> {
    const h = await this.hostService.resolve(hostRef);
    if (h.state !== 'fenced') throw new StowageError('INVALID_STATE', `host ${h.name} is not fenced`, { state: h.state });
    await this.store.transaction(async (trx) => {
      await transition(trx, 'host', {
        id: h.id, tenantId: h.tenant_id, to: 'unknown', patch: { agent_heartbeat_at: null },
        event: { actor: ctx.actor, action: 'unfence', resourceName: h.name, message: `host ${h.name} unfenced` },
      });
      await this.engine.record(trx, { kind: 'host.unfence', tenantId: ctx.tenantId, targetType: 'host', targetId: h.id, input: {}, actor: ctx.actor }, {});
    });
    await this.engine.recorded('host.unfence');
  }

  /** Attaches every volume the fenced host had to the same-named instances on `toHost`. */
  async evacuate(hostRef: string, toHostRef: string, ctx: RequestContext): Promise<Operation[]> {
    const h = await this.hostService.resolve(hostRef);
    const to = await this.hostService.resolve(toHostRef);
    if (h.state !== 'fenced') {
      throw new StowageError('HOST_NOT_FENCED', `host ${h.name} is not fenced; fence it first (stowage host fence ${h.name}) so it cannot write while its volumes move`, { host: h.name });
    }
    const cut = await this.repos.attachments.listGoneForHost(this.store.db, h.id, FENCED_REASON);
    const ops: Operation[] = [];
    const seen = new Set<string>();
    for (const a of cut) {
      const key = `${a.volume_id}/${a.instance}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const v = await this.repos.volumes.findById(this.store.db, a.volume_id);
      if (v?.state !== 'available') continue;
      const already = await this.repos.attachments.findLive(this.store.db, a.volume_id, to.id, a.instance);
      if (already) continue;
      const r = await this.attachmentsService.attach({ volume: a.volume_id, host: to.id, instance: a.instance, mode: a.mode }, ctx);
      ops.push(r.operation);
    }
    return ops;
  }
}
