import { StowageError } from '../../core/errors.js';
import { isNodeGone, isNodeWait } from '../../nodes/node-errors.js';
import type { ConnectionInfoModel } from '../../core/schemas/access-schema.js';
import type { GrantState } from '../../core/states.js';
import { requirePort, type AccessPort } from '../../drivers/sdk/ports.js';
import type { DriverHandle } from '../../drivers/sdk/types.js';
import { hostIdentity } from '../../hosts/host-service.js';
import type { StepContext } from '../../operations/handler.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import type { GrantRow, HostRow, VolumeRow } from '../../store/schema.js';
import { transition, type PatchOf } from '../../store/transition.js';
import { volumeOnBackend } from '../../volumes/operations/volume-driver.js';
import { grantRequestOf } from '../grant-secrets.js';
import { toOperationError } from '../../operations/engine.js';
import { isLeaseLost } from '../../operations/lease-lost-error.js';

type Deps = Pick<OperationDeps, 'store' | 'repos' | 'drivers' | 'secrets'>;

/** The volume a grant event is filed under (where operators look for who has access). */
export interface GrantSubject { readonly id: string; readonly name: string }

/** A grant with its host, volume, backend access port (guarded by the operation's lease) and the volume's handle. */
export interface GrantParts {
  readonly grant: GrantRow;
  readonly host: HostRow;
  readonly volume: VolumeRow;
  readonly access: AccessPort;
  readonly handle: DriverHandle;
}

/** The access port of a volume's backend, with the volume's handle. */
export async function accessOf(deps: Deps, ctx: StepContext<object>, volume: VolumeRow): Promise<{ access: AccessPort; handle: DriverHandle }> {
  const { driver, backend, handle } = await volumeOnBackend(deps, ctx, volume);
  return { access: requirePort(driver, 'access', backend.name), handle };
}

/** A grant with its host and volume (for its events and state moves; no backend needed). */
export async function loadGrant(deps: Deps, grantId: string): Promise<{ grant: GrantRow; host: HostRow; volume: VolumeRow }> {
  const grant = await deps.repos.grants.findById(deps.store.db, grantId);
  if (!grant) throw new StowageError('NOT_FOUND', `grant ${grantId} vanished`, {});
  const host = await deps.repos.hosts.findById(deps.store.db, grant.host_id);
  const volume = await deps.repos.volumes.findById(deps.store.db, grant.volume_id);
  if (!host || !volume) throw new StowageError('NOT_FOUND', `grant ${grantId} lost its host or volume`, {});
  return { grant, host, volume };
}

/** The grant with everything needed to bind it on its backend. */
export async function loadGrantParts(deps: Deps, ctx: StepContext<object>, grantId: string): Promise<GrantParts> {
  const { grant, host, volume } = await loadGrant(deps, grantId);
  return { grant, host, volume, ...(await accessOf(deps, ctx, volume)) };
}

/** Moves a grant to `to` with its event, filed under its volume like every grant event; under the operation's lease. */
export async function moveGrant(ctx: StepContext<object>, g: GrantRow, host: Pick<HostRow, 'id' | 'name'>, volume: GrantSubject, to: GrantState, message: string, patch: PatchOf<'grant'> = {}): Promise<void> {
  await ctx.write((trx) => transition(trx, 'grant', {
    id: g.id, tenantId: g.tenant_id, to, patch,
    event: {
      actor: ctx.operation.actor, action: `grant-${to}`, message, operationId: ctx.operation.id, details: { host: host.name, hostId: host.id, mode: g.mode },
      subject: { type: 'volume', id: volume.id, name: volume.name },
    },
  }));
}

/**
 * Binds a grant on its backend (ACL for the host's addresses/initiator and a CHAP account, or a file
 * path for local backends) and returns the connection info without the secret: the secret stays
 * sealed in the grant row, and what is kept in clear must not carry it.
 */
export async function bindGrant(deps: Deps, p: GrantParts, signal: AbortSignal): Promise<ConnectionInfoModel> {
  const info = await p.access.grant(p.handle, grantRequestOf(p.grant, p.host, deps.secrets), signal);
  return Object.fromEntries(Object.entries(info).filter(([k]) => k !== 'chapSecret')) as ConnectionInfoModel;
}

/**
 * Revokes the host's access to the grant's volume on its backend: unbinds it and drops its live
 * sessions. The one place a revoke reaches a backend, and it returns only once the backend
 * confirmed: a backend that cannot be reached (its target daemon down, its driver failing) fails
 * with BACKEND_UNAVAILABLE, which the engine retries with backoff, and the caller never marks the
 * grant revoked (a fence never marks its host fenced) before this returned.
 *
 * A grant whose volume has no backend row any more has nothing left to revoke on, and returns at
 * once: a backend row is deleted only once it holds no live volume (BACKEND_IN_USE otherwise), and a
 * volume is deleted only without live grants and after its data, and with it its export, was
 * destroyed; so no export of that volume is left anywhere for the host to reach. An offline backend
 * still has its row: it is asked, and retried, like any other.
 */
export async function revokeOnBackend(deps: Deps, ctx: StepContext<object>, g: GrantRow, host: HostRow): Promise<'revoked' | 'nothing-to-revoke'> {
  const v = await deps.repos.volumes.findById(deps.store.db, g.volume_id);
  const b = v?.backend_id ? await deps.repos.backends.findById(deps.store.db, v.backend_id) : undefined;
  if (!v || !b) return 'nothing-to-revoke';
  try {
    const { access, handle } = await accessOf(deps, ctx, v);
    await access.revoke(handle, hostIdentity(host), ctx.signal);
    return 'revoked';
  } catch (err) {
    // Lost lease, cancellation, or a backend that can never revoke (no access port): not a reachability problem.
    if (isLeaseLost(err) || ctx.signal.aborted) throw err;
    const e = toOperationError(err);
    if (e.code === 'CAPABILITY_MISSING') throw e;
    // A node that does not answer is waited for (the engine requeues); a deleted node exports nothing any more.
    if (isNodeWait(e)) throw e;
    if (isNodeGone(e)) return 'nothing-to-revoke';
    throw new StowageError('BACKEND_UNAVAILABLE', `backend ${b.name} did not confirm the revoke of host ${host.name}'s access to volume ${v.name}: ${e.message}`, { ...e.details, backend: b.name, host: host.name, volume: v.name, cause: e.code }, { cause: err });
  }
}

/** The messages and reason of one revoke, as the caller tells it. */
export interface RevokeTexts {
  readonly revoking: string;
  readonly revoked: string;
  readonly reason: string | null;
}

/**
 * Revoke, then mark the grant revoked: out of the desired set first (`revoking`, so an export
 * reconcile pass cannot re-bind it), then the backend, and only once it answered, `revoked`.
 */
export async function revokeGrant(deps: Deps, ctx: StepContext<object>, g: GrantRow, host: HostRow, volume: GrantSubject, texts: RevokeTexts): Promise<void> {
  if (g.state !== 'revoking') await moveGrant(ctx, g, host, volume, 'revoking', texts.revoking);
  const outcome = await revokeOnBackend(deps, ctx, g, host);
  const reason = outcome === 'nothing-to-revoke' ? `${texts.reason ?? 'revoked'}; its backend no longer exists, nothing was left to revoke on` : texts.reason;
  await moveGrant(ctx, g, host, volume, 'revoked', texts.revoked, { state_reason: reason });
}
