import { Type } from '@sinclair/typebox';
import { loadGrant, moveGrant, revokeGrant } from '../../access/operations/grant-steps.js';
import { revokeIfUnused, setAttachmentState, waitDisconnected } from '../../attachments/attachment-steps.js';
import { StowageError } from '../../core/errors.js';
import { DEFAULT_TENANT_ID } from '../../core/ids.js';
import { SNAPSHOT_MACHINE, VOLUME_MACHINE, type SnapshotState, type VolumeState } from '../../core/states.js';
import { defineOperation } from '../../operations/define-operation.js';
import type { StepContext } from '../../operations/handler.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { destroySnapshotData, markSnapshotDeleted } from '../../snapshots/operations/snapshot-delete.js';
import { setSnapshot } from '../../snapshots/operations/snapshot-steps.js';
import { nowIso } from '../../store/json.js';
import type { AttachmentRow } from '../../store/schema.js';
import { moveVolume } from '../../volumes/operations/move-volume.js';
import { destroyVolumeData, markVolumeDeleted } from '../../volumes/operations/volume-delete.js';

/** tenant.delete's input: the tenant's name (for messages, and the journal once the row is gone). */
export const TenantDeleteInput = Type.Object({ name: Type.String() });

type Ctx = StepContext<{ readonly name: string }>;

/**
 * How long one try of a step waits for the tenant's other operations (submitted before the delete
 * sealed it) to finish, before it fails with TIMEOUT and the engine retries it. 30 s covers a
 * create, a snapshot or a detach on its shipped timings; an operation waiting for a storage node
 * longer than the retries fails the delete, which is submitted again once that node is back.
 */
const SETTLE_WAIT_MS = 30_000;
const SETTLE_POLL_MS = 100;
/** The states a volume or snapshot may be deleted from; any other (left transitional by a lost operation) goes through `error` first. */
const VOLUME_DELETABLE: readonly VolumeState[] = VOLUME_MACHINE.sourcesOf('deleting');
const SNAPSHOT_DELETABLE: readonly SnapshotState[] = SNAPSHOT_MACHINE.sourcesOf('deleting');

/**
 * Waits until no operation filed under the tenant is queued or running: a request that was
 * authenticated before the seal may still have submitted one, and a resource an operation owns is
 * left to it (destroying a volume under its running create would leave the create's data behind).
 */
async function settleOperations(deps: OperationDeps, ctx: Ctx): Promise<void> {
  const deadline = Date.now() + SETTLE_WAIT_MS;
  for (;;) {
    const busy = await deps.repos.operations.listActiveOfTenant(deps.store.db, ctx.operation.target_id);
    if (busy.length === 0) return;
    if (Date.now() >= deadline || ctx.signal.aborted) {
      throw new StowageError('TIMEOUT', `tenant ${ctx.input.name} still has ${String(busy.length)} operation(s) in progress (${busy.slice(0, 3).map((o) => `${o.id} ${o.kind}`).join(', ')}); the delete waits for them`, {
        tenant: ctx.input.name, operations: busy.map((o) => o.id),
      });
    }
    await new Promise((r) => setTimeout(r, SETTLE_POLL_MS));
  }
}

/** Detaches one live attachment as attachment.detach does: disconnect (or not, host down), revoke unless shared, gone. */
async function detach(deps: OperationDeps, ctx: Ctx, a: AttachmentRow): Promise<void> {
  const why = `tenant ${ctx.input.name} is being deleted`;
  if (a.state !== 'disconnecting' && a.state !== 'revoking') await setAttachmentState(ctx, a, 'disconnecting', `${why}: detaching from ${a.instance}`);
  const outcome = await waitDisconnected(deps, a.id, ctx.signal);
  const now = await deps.repos.attachments.findById(deps.store.db, a.id);
  if (!now) return;
  if (now.state !== 'revoking') await setAttachmentState(ctx, now, 'revoking', outcome === 'disconnected' ? 'disconnected by the agent; revoking access' : `host did not confirm (${outcome}); revoking access anyway`);
  await revokeIfUnused(deps, now, ctx);
  await setAttachmentState(ctx, now, 'gone', `detached from ${now.instance}: ${why}`, { state_reason: null, device_id: null });
}

/**
 * tenant.delete (`DELETE /v1/tenants/{ref}?cascade=true`): everything a tenant owns, in one durable
 * operation filed under the default tenant (it outlives the tenant it deletes). The submit already
 * marked the tenant deleting and revoked its tokens in the same transaction; the steps then detach
 * its attachments and revoke its grants on the backends, destroy its snapshots and volumes on theirs,
 * and delete its users, tokens, quotas, history and the tenant row. Every step acts on what is
 * still there when it runs, so a replay after a kill redoes only what was not recorded as done;
 * each resource goes through the same functions its own delete uses. A backend that cannot be
 * reached is retried (BACKEND_UNAVAILABLE) and, once the retries are spent, fails the operation
 * with its resources still live and the tenant still marked: `stowage tenant delete NAME --cascade`
 * again carries on. Nothing is undone: a half-deleted tenant is never given back.
 */
export function tenantDelete(deps: OperationDeps) {
  return defineOperation({
    kind: 'tenant.delete',
    input: TenantDeleteInput,
    steps: [
      {
        // Idempotent again here (the submit did it), so a journal entry alone is enough to finish the job.
        name: 'seal',
        run: async (ctx) => {
          const tenantId = ctx.operation.target_id;
          if (!(await deps.repos.tenants.findTenantById(deps.store.db, tenantId))) return;
          const at = nowIso();
          await ctx.write(async (trx) => {
            await deps.repos.tenants.markDeleting(trx, tenantId, at);
            await deps.repos.tenants.revokeTokensOfTenant(trx, tenantId, at);
          });
          await settleOperations(deps, ctx);
        },
      },
      {
        name: 'access',
        run: async (ctx) => {
          await settleOperations(deps, ctx);
          const tenantId = ctx.operation.target_id;
          for (const a of await deps.repos.attachments.listLiveOfTenant(deps.store.db, tenantId)) await detach(deps, ctx, a);
          for (const g of await deps.repos.grants.listLiveOfTenant(deps.store.db, tenantId)) {
            const { grant, host, volume } = await loadGrant(deps, g.id);
            await revokeGrant(deps, ctx, grant, host, volume, {
              revoking: `revoking ${host.name}'s access to ${volume.name}: tenant ${ctx.input.name} is being deleted`,
              revoked: `host ${host.name} no longer has access to ${volume.name}`,
              reason: `tenant ${ctx.input.name} deleted`,
            });
          }
        },
      },
      {
        name: 'snapshots',
        run: async (ctx) => {
          await settleOperations(deps, ctx);
          for (const s of await deps.repos.snapshots.listUndeletedOfTenant(deps.store.db, ctx.operation.target_id)) {
            if (s.state !== 'deleting') {
              // A snapshot left `creating` by a lost operation goes through `error`, like the sweeper would move a volume.
              if (!SNAPSHOT_DELETABLE.includes(s.state)) await setSnapshot(deps, ctx, s, 'error', { state_reason: 'left unfinished; deleted with its tenant' }, `snapshot ${s.name} left ${s.state}`);
              await setSnapshot(deps, ctx, s, 'deleting', { state_reason: null }, `snapshot ${s.name} deleting: tenant ${ctx.input.name} is being deleted`);
            }
            await destroySnapshotData(deps, ctx, s);
            await markSnapshotDeleted(deps, ctx, { ...s, state: 'deleting' });
          }
        },
      },
      {
        name: 'volumes',
        run: async (ctx) => {
          await settleOperations(deps, ctx);
          for (const v of await deps.repos.volumes.listUndeletedOfTenant(deps.store.db, ctx.operation.target_id)) {
            if (v.state !== 'deleting') {
              if (!VOLUME_DELETABLE.includes(v.state)) await moveVolume(ctx, v, 'error', { state_reason: 'left unfinished; deleted with its tenant' }, `volume ${v.name} left ${v.state}`, 'sweep');
              await moveVolume(ctx, v, 'deleting', { state_reason: null }, `volume ${v.name} deleting: tenant ${ctx.input.name} is being deleted`, 'delete');
            }
            await destroyVolumeData(deps, ctx, v);
            await markVolumeDeleted(ctx, { ...v, state: 'deleting' });
          }
        },
      },
      {
        name: 'finalize',
        run: async (ctx) => {
          const tenantId = ctx.operation.target_id;
          if (!(await deps.repos.tenants.findTenantById(deps.store.db, tenantId))) return;
          await settleOperations(deps, ctx);
          await ctx.write(async (trx) => {
            // Made after the steps above looked (a request authenticated before the seal): refused, never orphaned.
            const left = [
              ...(await deps.repos.volumes.listUndeletedOfTenant(trx, tenantId)).map((v) => `volume ${v.name}`),
              ...(await deps.repos.snapshots.listUndeletedOfTenant(trx, tenantId)).map((s) => `snapshot ${s.name}`),
              ...(await deps.repos.grants.listLiveOfTenant(trx, tenantId)).map((g) => `grant ${g.id}`),
              ...(await deps.repos.attachments.listLiveOfTenant(trx, tenantId)).map((a) => `attachment ${a.id}`),
            ];
            if (left.length > 0) {
              throw new StowageError('TENANT_NOT_EMPTY', `tenant ${ctx.input.name} got ${left.join(', ')} while it was being deleted; run \`stowage tenant delete ${ctx.input.name} --cascade\` again`, { tenant: ctx.input.name });
            }
            await deps.repos.tenants.deleteTenantAndRows(trx, tenantId);
            await deps.repos.events.append(trx, {
              tenantId: DEFAULT_TENANT_ID, actor: ctx.operation.actor, resourceType: 'tenant', resourceId: tenantId, resourceName: ctx.input.name,
              action: 'deleted', message: `tenant ${ctx.input.name} deleted with everything it owned`, operationId: ctx.operation.id,
            });
          });
        },
      },
    ],
    compensate: async (ctx, error) => {
      // Nothing is given back: what the steps did not reach stays live, and the tenant stays marked.
      // What this operation left mid-move (and no other operation owns) settles in `error` with the reason.
      const tenantId = ctx.operation.target_id;
      const reason = `tenant delete failed: ${error.message}; run \`stowage tenant delete ${ctx.input.name} --cascade\` again once the backend is back`;
      const ownedByOther = async (id: string): Promise<boolean> => (await deps.repos.operations.findActiveForTarget(deps.store.db, id)) !== undefined;
      for (const a of await deps.repos.attachments.listLiveOfTenant(deps.store.db, tenantId)) {
        if ((a.state === 'disconnecting' || a.state === 'revoking') && !(await ownedByOther(a.id))) await setAttachmentState(ctx, a, 'error', `detach failed: ${error.message}`, { state_reason: reason });
      }
      for (const g of await deps.repos.grants.listLiveOfTenant(deps.store.db, tenantId)) {
        if (g.state !== 'revoking' || (await ownedByOther(g.id))) continue;
        const p = await loadGrant(deps, g.id);
        await moveGrant(ctx, p.grant, p.host, p.volume, 'error', `revoking ${p.host.name} from ${p.volume.name} failed: ${error.message}`, { state_reason: reason });
      }
      for (const s of await deps.repos.snapshots.listUndeletedOfTenant(deps.store.db, tenantId)) {
        if (s.state === 'deleting' && !(await ownedByOther(s.id))) await setSnapshot(deps, ctx, s, 'error', { state_reason: reason }, `snapshot ${s.name} delete failed: ${error.message}`);
      }
      for (const v of await deps.repos.volumes.listUndeletedOfTenant(deps.store.db, tenantId)) {
        if (v.state === 'deleting' && !(await ownedByOther(v.id))) await moveVolume(ctx, v, 'error', { state_reason: reason }, `volume ${v.name} delete failed: ${error.message}`, 'delete-failed');
      }
    },
    result: async (ctx) => ({ tenantId: ctx.operation.target_id, tenant: ctx.input.name }),
  });
}
