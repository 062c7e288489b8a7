import { StowageError } from '../core/errors.js';
import { transition } from '../store/transition.js';
import type { Operation } from '../core/models.js';
import { hostIdentity, type HostService } from '../hosts/host-service.js';
import type { OperationEngine } from '../operations/engine.js';
import type { OperationHandler } from '../operations/handler.js';
import { GrantRepository, HostRepository } from '../store/access-repository.js';
import { AttachmentRepository } from '../store/attachment-repository.js';
import { BackendRepository } from '../store/backend-repository.js';
import { EventRepository } from '../store/event-repository.js';
import { toOperation } from '../store/operation-repository.js';
import type { Store } from '../store/store.js';
import { VolumeRepository, volumeHandle } from '../store/volume-repository.js';
import type { RequestContext } from '../volumes/volume-service.js';
import type { AttachmentService } from './attachment-service.js';
import { moveGrant, type AttachDeps } from './attachment-steps.js';
import { requirePort } from '../drivers/sdk/ports.js';
import type { Repositories } from '../store/repositories.js';

const hosts = new HostRepository();
const grants = new GrantRepository();
const attachments = new AttachmentRepository();
const volumes = new VolumeRepository();
const backends = new BackendRepository();
const events = new EventRepository();

/** The reason recorded on attachments cut by a fence; evacuation looks for it. */
export const FENCED_REASON = 'host fenced';

/**
 * host.fence: revoke every grant of the host on its backends and drop its live sessions, mark its
 * attachments gone, and only then mark the host fenced. Until this finished, the host's read-write
 * volumes cannot be attached anywhere else.
 */
export function fenceHandler(deps: AttachDeps): OperationHandler {
  return {
    kind: 'host.fence',
    steps: [
      {
        name: 'revoke',
        run: async (ctx) => {
          const h = await hosts.findById(deps.store.db, ctx.operation.target_id);
          if (!h) throw new StowageError('HOST_NOT_FOUND', 'host vanished', {});
          const live = await grants.listLiveForHost(deps.store.db, h.id);
          for (const g of live) {
            const v = await volumes.findById(deps.store.db, g.volume_id);
            const b = v?.backend_id ? await backends.findById(deps.store.db, v.backend_id) : undefined;
            // Out of the desired set before the backend is touched, so an export reconcile pass cannot re-bind it.
            const subject = { id: g.volume_id, name: v?.name ?? g.volume_id };
            if (g.state !== 'revoking') await moveGrant(ctx, g, subject, 'revoking', `fencing ${h.name}: revoking its access to ${subject.name}`);
            if (v && b) await requirePort(ctx.guard(deps.drivers.get(b)), 'access', b.name).revoke(volumeHandle(v) ?? { id: v.id, format: v.format }, hostIdentity(h), ctx.signal);
            await moveGrant(ctx, g, subject, 'revoked', `host ${h.name} fenced: no access to ${subject.name} left`, { state_reason: FENCED_REASON });
          }
          ctx.note(`revoked ${live.length} grant(s)`);
        },
      },
      {
        name: 'mark',
        run: async (ctx) => {
          const h = await hosts.findById(deps.store.db, ctx.operation.target_id);
          if (!h) throw new StowageError('HOST_NOT_FOUND', 'host vanished', {});
          await ctx.write(async (trx) => {
            for (const a of await attachments.listLiveForHost(trx, h.id)) {
              await transition(trx, 'attachment', {
                id: a.id, tenantId: a.tenant_id, to: 'gone', patch: { state_reason: FENCED_REASON, reported_at: null },
                event: { actor: ctx.operation.actor, action: 'fenced', resourceName: a.instance, message: `attachment cut: host ${h.name} fenced`, operationId: ctx.operation.id },
              });
            }
            await transition(trx, 'host', {
              id: h.id, tenantId: h.tenant_id, to: 'fenced',
              event: { actor: ctx.operation.actor, action: 'fence', resourceName: h.name, message: `host ${h.name} fenced: no access to any volume left`, operationId: ctx.operation.id },
            });
          });
        },
      },
    ],
    compensate: async (ctx, error) => {
      const h = await hosts.findById(deps.store.db, ctx.operation.target_id);
      if (!h) return;
      await ctx.write((trx) => events.append(trx, { tenantId: h.tenant_id, actor: ctx.operation.actor, resourceType: 'host', resourceId: h.id, resourceName: h.name, action: 'fence-failed', from: h.state, to: h.state, message: `fencing ${h.name} failed: ${error.message}; run it again`, operationId: ctx.operation.id }));
    },
  };
}

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
