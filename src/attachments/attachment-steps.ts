import { StowageError } from '../core/errors.js';
import { ATTACHMENT_STATES, LIVE_ATTACHMENT_STATES, type AttachmentState } from '../core/states.js';
import { insertGrant } from '../access/grant-secrets.js';
import { bindGrant, accessOf, moveGrant, revokeGrant } from '../access/operations/grant-steps.js';
import type { StepContext } from '../operations/handler.js';
import type { OperationDeps } from '../operations/operation-deps.js';
import { nowIso, writeJson } from '../store/json.js';
import type { AttachmentRow, GrantRow, HostRow } from '../store/schema.js';
import { transition, type PatchOf } from '../store/transition.js';
import { loadVolume } from '../volumes/operations/volume-driver.js';

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
export type AttachDeps = Pick<OperationDeps, 'store' | 'repos' | 'drivers' | 'secrets' | 'timings'>;

/** True when the host's agent has reported recently enough to be trusted as alive. */
export function hostIsUp(host: HostRow, hostDownAfterMs: number, now = Date.now()): boolean {
  if (host.state === 'fenced' || !host.agent_heartbeat_at) return false;
  return now - Date.parse(host.agent_heartbeat_at) < hostDownAfterMs;
}

/** The attachment row; ATTACHMENT_NOT_FOUND when it is gone. */
export async function loadAttachment(deps: AttachDeps, id: string): Promise<AttachmentRow> {
  const a = await deps.repos.attachments.findById(deps.store.db, id);
  if (!a) throw new StowageError('ATTACHMENT_NOT_FOUND', `attachment ${id} vanished`, {});
  return a;
}

/** Moves an attachment to `to` and records the event under the operation's actor (no-op when already there with nothing to change). */
export async function setAttachmentState(ctx: StepContext<object>, a: AttachmentRow, to: AttachmentState, message: string, patch: PatchOf<'attachment'> = {}): Promise<void> {
  const { actor, id: operationId } = ctx.operation;
  const onlyFrom = Object.keys(patch).length === 0 ? ATTACHMENT_STATES.filter((s) => s !== to) : undefined;
  await ctx.write((trx) => transition(trx, 'attachment', {
    id: a.id, tenantId: a.tenant_id, to, patch, ...(onlyFrom ? { onlyFrom } : {}),
    event: { actor, action: to, message, operationId, resourceName: a.instance, details: { volumeId: a.volume_id, hostId: a.host_id, instance: a.instance } },
  }));
}

/**
 * Makes sure the attachment's host holds an active grant on the backend (creating one, with its own
 * CHAP secret, if needed) and links it. Idempotent: re-binding an active grant is harmless.
 */
export async function ensureGrant(deps: AttachDeps, a: AttachmentRow, ctx: StepContext<object>): Promise<GrantRow> {
  const host = await deps.repos.hosts.findById(deps.store.db, a.host_id);
  if (!host) throw new StowageError('HOST_NOT_FOUND', `host ${a.host_id} vanished`, {});
  if (host.state === 'fenced') throw new StowageError('INVALID_STATE', `host ${host.name} is fenced`, { host: host.name });
  const live = await deps.repos.grants.findLive(deps.store.db, a.volume_id, a.host_id);
  if (live && live.state !== 'active' && live.state !== 'granting') {
    throw new StowageError('INVALID_STATE', `the grant of host ${host.name} is ${live.state}; wait for it to settle`, { state: live.state });
  }
  const grant = live ?? await ctx.write((trx) => insertGrant(trx, deps.repos.grants, { tenantId: a.tenant_id, volumeId: a.volume_id, host, mode: a.mode }, deps.secrets));
  const volume = await loadVolume(deps, a.volume_id);
  const info = await bindGrant(deps, { grant, host, volume, ...(await accessOf(deps, ctx, volume)) }, ctx.signal);
  if (grant.state === 'active') await ctx.write((trx) => deps.repos.grants.update(trx, grant.id, { connection: writeJson(info), updated_at: nowIso() }));
  else await moveGrant(ctx, grant, host, volume, 'active', `host ${host.name} has ${grant.mode} access to ${volume.name}`, { connection: writeJson(info) });
  await ctx.write((trx) => deps.repos.attachments.update(trx, a.id, { grant_id: grant.id, updated_at: nowIso() }));
  return { ...grant, state: 'active', connection: writeJson(info) };
}

/** Waits until the agent reports the attachment connected; throws TIMEOUT or INVALID_STATE otherwise. */
export async function waitConnected(deps: AttachDeps, id: string, signal: AbortSignal): Promise<AttachmentRow> {
  const deadline = Date.now() + deps.timings.connectTimeoutMs;
  for (;;) {
    const a = await loadAttachment(deps, id);
    if (a.reported_at && a.device_id) return a;
    const host = await deps.repos.hosts.findById(deps.store.db, a.host_id);
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
    const host = await deps.repos.hosts.findById(deps.store.db, a.host_id);
    if (!host || !hostIsUp(host, deps.timings.hostDownAfterMs)) return 'host-down';
    if (Date.now() > deadline || signal.aborted) return 'timed-out';
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Revokes the host's grant on the backend (dropping live sessions) unless another live attachment of
 * the same volume on the same host still needs it. Idempotent.
 */
export async function revokeIfUnused(deps: AttachDeps, a: AttachmentRow, ctx: StepContext<object>): Promise<boolean> {
  const others = (await deps.repos.attachments.listLiveForVolume(deps.store.db, a.volume_id)).filter((o) => o.id !== a.id && o.host_id === a.host_id && LIVE_ATTACHMENT_STATES.includes(o.state));
  if (others.length > 0) return false;
  const g = await deps.repos.grants.findLive(deps.store.db, a.volume_id, a.host_id);
  if (!g) return true;
  const host = await deps.repos.hosts.findById(deps.store.db, a.host_id);
  if (!host) return true;
  const volume = await loadVolume(deps, a.volume_id);
  await revokeGrant(deps, ctx, g, host, volume, {
    revoking: `revoking ${host.name}'s access to ${volume.name}: attachment ${a.id} detaching`,
    revoked: `host ${host.name} no longer has access to ${volume.name}`,
    reason: `attachment ${a.id} detached`,
  });
  return true;
}
