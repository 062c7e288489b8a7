import { Type } from '@sinclair/typebox';
import { StowageError } from '../../core/errors.js';
import { revokeGrant } from '../../access/operations/grant-steps.js';
import { defineOperation } from '../../operations/define-operation.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { transition } from '../../store/transition.js';

/** The reason recorded on attachments cut by a fence; evacuation looks for it. */
export const FENCED_REASON = 'host fenced';

/** host.fence's input: nothing beyond its target. */
export const HostFenceInput = Type.Object({});

/**
 * host.fence: revoke every grant of the host on its backends and drop its live sessions, mark its
 * attachments gone, and only then mark the host fenced. Until this finished, the host's read-write
 * volumes cannot be attached anywhere else.
 */
export function hostFence(deps: OperationDeps) {
  const { hosts, grants, volumes, attachments, events } = deps.repos;
  return defineOperation({
    kind: 'host.fence',
    input: HostFenceInput,
    steps: [
      {
        name: 'revoke',
        run: async (ctx) => {
          const h = await hosts.findById(deps.store.db, ctx.operation.target_id);
          if (!h) throw new StowageError('HOST_NOT_FOUND', 'host vanished', {});
          const live = await grants.listLiveForHost(deps.store.db, h.id);
          for (const g of live) {
            const v = await volumes.findById(deps.store.db, g.volume_id);
            const subject = { id: g.volume_id, name: v?.name ?? g.volume_id };
            await revokeGrant(deps, ctx, g, h, subject, {
              revoking: `fencing ${h.name}: revoking its access to ${subject.name}`,
              revoked: `host ${h.name} fenced: no access to ${subject.name} left`,
              reason: FENCED_REASON,
            });
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
  });
}
