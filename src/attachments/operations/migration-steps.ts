import { Type } from '@sinclair/typebox';
import { StowageError } from '../../core/errors.js';
import { LIVE_ATTACHMENT_STATES, type MigrationState } from '../../core/states.js';
import type { StepContext } from '../../operations/handler.js';
import type { MigrationRow } from '../../store/schema.js';
import { transition } from '../../store/transition.js';
import { loadAttachment, revokeIfUnused, setAttachmentState, waitDisconnected, type AttachDeps } from '../attachment-steps.js';

/** The input of every migration phase: nothing beyond its target (the migration row holds the rest). */
export const MigrationPhaseInput = Type.Object({});

/** The migration row; NOT_FOUND when it is gone. */
export async function loadMigration(deps: AttachDeps, id: string): Promise<MigrationRow> {
  const m = await deps.repos.attachments.findMigration(deps.store.db, id);
  if (!m) throw new StowageError('NOT_FOUND', `migration ${id} vanished`, {});
  return m;
}

/** Moves the migration to `to` with its event, under the operation's lease. */
export async function setMigration(ctx: StepContext<object>, m: MigrationRow, to: MigrationState, reason: string | null): Promise<void> {
  await ctx.write((trx) => transition(trx, 'migration', {
    id: m.id, tenantId: m.tenant_id, to, patch: { state_reason: reason },
    event: { actor: ctx.operation.actor, action: to, resourceName: m.instance, operationId: ctx.operation.id, message: `migration of ${m.instance}: ${to}${reason ? ` (${reason})` : ''}` },
  }));
}

/** Detaches every live attachment of the instance on one host (disconnect, revoke, gone), inline. */
export async function detachSide(deps: AttachDeps, ctx: StepContext<object>, hostId: string, instance: string): Promise<void> {
  for (const a of await deps.repos.attachments.listForHostInstance(deps.store.db, hostId, instance, [...LIVE_ATTACHMENT_STATES])) {
    if (a.state !== 'disconnecting' && a.state !== 'revoking') await setAttachmentState(ctx, a, 'disconnecting', 'migration: detaching');
    const outcome = await waitDisconnected(deps, a.id, ctx.signal);
    await setAttachmentState(ctx, await loadAttachment(deps, a.id), 'revoking', `migration: ${outcome}; revoking`);
    await revokeIfUnused(deps, await loadAttachment(deps, a.id), ctx);
    await setAttachmentState(ctx, await loadAttachment(deps, a.id), 'gone', 'migration: detached', { device_id: null });
  }
}
