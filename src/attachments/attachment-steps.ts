import { StowageError } from '../core/errors.js';
import type { VolumeId } from '../core/ids.js';
import type { DriverCache } from '../backends/driver-cache.js';
import { applyGrant } from '../access/access-operations.js';
import { hostIdentity } from '../hosts/host-service.js';
import { GrantRepository, HostRepository } from '../store/access-repository.js';
import { AttachmentRepository } from '../store/attachment-repository.js';
import { LIVE_ATTACHMENT_STATES, type AttachmentState, type GrantState } from '../core/states.js';
import { transition, type PatchOf } from '../store/transition.js';
import { BackendRepository } from '../store/backend-repository.js';
import { nowIso, writeJson } from '../store/json.js';
import type { AttachmentRow, GrantRow, HostRow } from '../store/schema.js';
import type { Store } from '../store/store.js';
import { VolumeRepository, volumeHandle } from '../store/volume-repository.js';
import type { SecretBox } from '../system/secret-box.js';
import { newGrantRow } from '../access/grant-secrets.js';
import type { StepContext } from '../operations/handler.js';
import { requirePort } from '../drivers/sdk/ports.js';

/** Timing of the host side, all in milliseconds. */
export interface AttachTimings {
  /** How long an attach waits for the agent to report the device connected. */
  readonly connectTimeoutMs: number;
  /** How long a detach waits for the agent to report the device gone before revoking anyway. */
  readonly disconnectTimeoutMs: number;
  /** A host whose agent has not reported for this long is down. */
  readonly hostDownAfterMs: number;
}

/** What the attachment steps need. */
export interface AttachDeps {
  readonly store: Store;
  readonly drivers: DriverCache;
  readonly secrets: SecretBox;
  readonly timings: AttachTimings;
}

const attachments = new AttachmentRepository();
const grants = new GrantRepository();
const hosts = new HostRepository();
const volumes = new VolumeRepository();
const backends = new BackendRepository();

/** True when the host's agent has reported recently enough to be trusted as alive. */
export function hostIsUp(host: HostRow, hostDownAfterMs: number, now = Date.now()): boolean {
  if (host.state === 'fenced' || !host.agent_heartbeat_at) return false;
  return now - Date.parse(host.agent_heartbeat_at) < hostDownAfterMs;
}

export async function loadAttachment(deps: AttachDeps, id: string): Promise<AttachmentRow> {
  const a = await attachments.findById(deps.store.db, id);
  if (!a) throw new StowageError('ATTACHMENT_NOT_FOUND', `attachment ${id} vanished`, {});
  return a;
}

/** Moves an attachment to `to` and records the event (no-op when already there). */
export async function setAttachmentState(deps: AttachDeps, a: AttachmentRow, to: AttachmentState, actor: string, message: string, patch: PatchOf<'attachment'>, ctx: StepContext): Promise<void> {
  const operationId = ctx.operation.id;
  await ctx.write(async (trx) => {
    const cur = await attachments.findById(trx, a.id);
    if (!cur || (cur.state === to && Object.keys(patch).length === 0)) return;
    await transition(trx, 'attachment', {
      id: a.id, tenantId: a.tenant_id, to, patch,
      event: { actor, action: to, message, operationId, resourceName: a.instance, details: { volumeId: a.volume_id, hostId: a.host_id, instance: a.instance } },
    });
  });
}

/** The volume's driver and handle; the driver guarded by the operation's lease (a stale worker makes no driver call). */
async function driverParts(deps: AttachDeps, ctx: StepContext, volumeId: VolumeId) {
  const v = await volumes.findById(deps.store.db, volumeId);
  if (!v?.backend_id) throw new StowageError('VOLUME_NOT_FOUND', `volume ${volumeId} vanished`, {});
  const b = await backends.findById(deps.store.db, v.backend_id);
  if (!b) throw new StowageError('BACKEND_NOT_FOUND', `backend ${v.backend_id} no longer exists`, {});
  return { volume: v, access: requirePort(ctx.guard(deps.drivers.get(b)), 'access', b.name), handle: volumeHandle(v) ?? { id: v.id, format: v.format } };
}

/** Moves a grant to `to` with its event, filed under its volume like every grant event; under the operation's lease. */
export async function moveGrant(ctx: StepContext, g: GrantRow, volume: { id: string; name: string }, to: GrantState, message: string, patch: PatchOf<'grant'> = {}): Promise<void> {
  await ctx.write((trx) => transition(trx, 'grant', {
    id: g.id, tenantId: g.tenant_id, to, patch,
    event: { actor: ctx.operation.actor, action: `grant-${to}`, message, operationId: ctx.operation.id, details: { hostId: g.host_id, mode: g.mode }, subject: { type: 'volume', id: volume.id, name: volume.name } },
  }));
}

/**
 * Makes sure the attachment's host holds an active grant on the backend (creating one, with its own
 * CHAP secret, if needed) and links it. Idempotent: re-binding an active grant is harmless.
 */
export async function ensureGrant(deps: AttachDeps, a: AttachmentRow, ctx: StepContext): Promise<GrantRow> {
  const host = await hosts.findById(deps.store.db, a.host_id);
  if (!host) throw new StowageError('HOST_NOT_FOUND', `host ${a.host_id} vanished`, {});
  if (host.state === 'fenced') throw new StowageError('INVALID_STATE', `host ${host.name} is fenced`, { host: host.name });
  let g = await grants.findLive(deps.store.db, a.volume_id, a.host_id);
  if (g && g.state !== 'active' && g.state !== 'granting') {
    throw new StowageError('INVALID_STATE', `the grant of host ${host.name} is ${g.state}; wait for it to settle`, { state: g.state });
  }
  if (!g) {
    g = newGrantRow({ tenantId: a.tenant_id, volumeId: a.volume_id, host, mode: a.mode }, deps.secrets);
    const row = g;
    await ctx.write((trx) => grants.insert(trx, row));
  }
  const parts = await driverParts(deps, ctx, a.volume_id);
  const info = await applyGrant({ store: deps.store, drivers: deps.drivers, secrets: deps.secrets }, { grant: g, host, volume: parts.volume, access: parts.access, handle: parts.handle }, ctx.signal);
  const grant = g;
  if (grant.state === 'active') await ctx.write((trx) => grants.update(trx, grant.id, { connection: writeJson(info), updated_at: nowIso() }));
  else await moveGrant(ctx, grant, parts.volume, 'active', `host ${host.name} has ${grant.mode} access to ${parts.volume.name}`, { connection: writeJson(info) });
  await ctx.write((trx) => attachments.update(trx, a.id, { grant_id: grant.id, updated_at: nowIso() }));
  return { ...g, state: 'active', connection: writeJson(info) };
}

/** Waits until the agent reports the attachment connected; throws TIMEOUT or INVALID_STATE otherwise. */
export async function waitConnected(deps: AttachDeps, id: string, signal: AbortSignal): Promise<AttachmentRow> {
  const deadline = Date.now() + deps.timings.connectTimeoutMs;
  for (;;) {
    const a = await loadAttachment(deps, id);
    if (a.reported_at && a.device_id) return a;
    const host = await hosts.findById(deps.store.db, a.host_id);
    if (host?.state === 'fenced') throw new StowageError('INVALID_STATE', `host ${host.name} was fenced while attaching`, {});
    if (Date.now() > deadline) {
      const why = host && hostIsUp(host, deps.timings.hostDownAfterMs) ? 'its agent did not report the disk connected' : 'its agent is not reporting (is `stowage agent` running there?)';
      throw new StowageError('TIMEOUT', `host ${host?.name ?? a.host_id} did not connect the volume within ${deps.timings.connectTimeoutMs} ms: ${why}`, {});
    }
    if (signal.aborted) throw new StowageError('TIMEOUT', 'cancelled', {});
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Waits until the agent reports the device gone. Returns at once when the host is down or fenced
 * (nothing there to ask), and after the timeout proceeds too: the revoke that follows cuts the
 * storage side either way, and the agent removes the dangling device as unwanted when it returns.
 */
export async function waitDisconnected(deps: AttachDeps, id: string, signal: AbortSignal): Promise<'disconnected' | 'host-down' | 'timed-out'> {
  const deadline = Date.now() + deps.timings.disconnectTimeoutMs;
  for (;;) {
    const a = await loadAttachment(deps, id);
    if (!a.reported_at) return 'disconnected';
    const host = await hosts.findById(deps.store.db, a.host_id);
    if (!host || !hostIsUp(host, deps.timings.hostDownAfterMs)) return 'host-down';
    if (Date.now() > deadline || signal.aborted) return 'timed-out';
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Revokes the host's grant on the backend (dropping live sessions) unless another live attachment of
 * the same volume on the same host still needs it. Idempotent.
 */
export async function revokeIfUnused(deps: AttachDeps, a: AttachmentRow, ctx: StepContext): Promise<boolean> {
  const others = (await attachments.listLiveForVolume(deps.store.db, a.volume_id)).filter((o) => o.id !== a.id && o.host_id === a.host_id && LIVE_ATTACHMENT_STATES.includes(o.state));
  if (others.length > 0) return false;
  const g = await grants.findLive(deps.store.db, a.volume_id, a.host_id);
  if (!g) return true;
  const host = await hosts.findById(deps.store.db, a.host_id);
  if (!host) return true;
  const parts = await driverParts(deps, ctx, a.volume_id);
  // Out of the desired set before the backend is touched, so an export reconcile pass cannot re-bind it.
  if (g.state !== 'revoking') await moveGrant(ctx, g, parts.volume, 'revoking', `revoking ${host.name}'s access to ${parts.volume.name}: attachment ${a.id} detaching`);
  await parts.access.revoke(parts.handle, hostIdentity(host), ctx.signal);
  await moveGrant(ctx, g, parts.volume, 'revoked', `host ${host.name} no longer has access to ${parts.volume.name}`, { state_reason: `attachment ${a.id} detached` });
  return true;
}
