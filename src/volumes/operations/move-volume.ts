import type { VolumeState } from '../../core/states.js';
import type { StepContext } from '../../operations/handler.js';
import type { VolumeRow } from '../../store/schema.js';
import type { Executor } from '../../store/store.js';
import { transition, type PatchOf } from '../../store/transition.js';

/** Moves the volume to `to` with an event, under the operation's lease; `also` runs in the same transaction (claim commit or release). */
export async function moveVolume(ctx: StepContext<object>, v: VolumeRow, to: VolumeState, patch: PatchOf<'volume'>, message: string, action: string, also?: (trx: Executor) => Promise<unknown>): Promise<void> {
  await ctx.write(async (trx) => {
    await transition(trx, 'volume', { id: v.id, tenantId: v.tenant_id, to, patch, event: { actor: ctx.operation.actor, action, message, resourceName: v.name, operationId: ctx.operation.id } });
    if (also) await also(trx);
  });
}
