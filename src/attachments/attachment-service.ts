import { StowageError } from '../core/errors.js';
import type { VolumeId } from '../core/ids.js';
import type { Transaction } from 'kysely';
import type { Database } from '../store/schema.js';
import { transition } from '../store/transition.js';
import { isId, newId } from '../core/ids.js';
import type { AttachRequest, AgentAnswer, AgentReport, Attachment, DesiredAttachment } from '../core/schemas/attachment-schema.js';
import type { ConnectionInfoModel } from '../core/schemas/access-schema.js';
import type { Operation } from '../core/schemas/operation-schema.js';
import type { PageOf } from '../core/models.js';
import { assertValidName } from '../core/names.js';
import type { OperationEngine } from '../operations/engine.js';
import { validateHost, type HostService } from '../hosts/host-service.js';
import { toAttachment } from '../store/attachment-repository.js';
import { nowIso, readJson, writeJson } from '../store/json.js';
import { toOperation } from '../store/operation-repository.js';
import type { PageRequest } from '../store/keyset-page.js';
import type { AttachmentRow, HostRow } from '../store/schema.js';
import type { Executor, Store } from '../store/store.js';
import type { SecretBox } from '../system/secret-box.js';
import type { RequestContext, VolumeService } from '../volumes/volume-service.js';
import { hostIsUp, type AttachTimings } from './attachment-steps.js';
import { withChapSecret } from '../access/grant-secrets.js';
import type { Repositories } from '../store/repositories.js';
import { exclusivityConflicts } from '../access/access-rules.js';

/**
 * The rules of attachments: a volume connected into a VM on a host. Attach = grant on the backend,
 * the host's agent connects and hot-plugs, attached. Detach reverses it and the revoke always
 * happens, even with the host down. A read-write volume is attached to one host at a time, except
 * during a live migration or when it is multi-attach; a host that is down must be fenced before its
 * read-write volumes may be attached elsewhere.
 */
export class AttachmentService {
  constructor(
    private readonly store: Store,
    private readonly repos: Repositories,
    private readonly engine: OperationEngine,
    private readonly volumes: VolumeService,
    private readonly hostService: HostService,
    private readonly secrets: SecretBox,
    private readonly timings: AttachTimings & { readonly heartbeatIntervalMs: number },
  ) {}

  async resolve(id: string, tenantId: string): Promise<AttachmentRow> {
    const a = isId('attachment', id) ? await this.repos.attachments.findById(this.store.db, id) : undefined;
    if (a?.tenant_id !== tenantId) throw new StowageError('ATTACHMENT_NOT_FOUND', `attachment "${id}" does not exist; see \`stowage attachment list\``, { attachment: id });
    return a;
  }

  async present(a: AttachmentRow, db: Executor = this.store.db): Promise<Attachment> {
    const v = await this.repos.volumes.findById(db, a.volume_id);
    const h = await this.repos.hosts.findById(db, a.host_id);
    return toAttachment(a, v?.name ?? a.volume_id, h?.name ?? a.host_id);
  }

  /** One page of a tenant's attachments (of one volume or host if given; gone ones only with `all`), oldest first. */
  async list(tenantId: string | null, filter: { volume?: string; host?: string; all?: boolean }, page: PageRequest): Promise<PageOf<Attachment>> {
    const volumeId = filter.volume ? (await this.volumes.resolve(filter.volume, tenantId)).id : undefined;
    const hostId = filter.host ? (await (tenantId === null ? this.hostService.resolve(filter.host) : this.hostService.usableBy(filter.host, tenantId))).id : undefined;
    const { rows, nextCursor } = await this.repos.attachments.page(this.store.db, tenantId, { ...(volumeId ? { volumeId } : {}), ...(hostId ? { hostId } : {}), includeGone: filter.all === true }, page);
    return { items: await Promise.all(rows.map((r) => this.present(r))), nextCursor };
  }

  /** Validates and records an attachment and its operation; an identical live attachment is returned as is. */
  async attach(req: AttachRequest, ctx: RequestContext): Promise<{ attachment: Attachment; operation: Operation }> {
    assertValidName(req.instance, 'instance name');
    const vol = await this.volumes.resolve(req.volume, ctx.tenantId);
    const host = await this.hostService.usableBy(req.host, ctx.tenantId);
    const out = await this.store.transaction(async (trx) => {
      const v = await this.volumes.resolve(vol.id, ctx.tenantId, trx);
      if (v.state !== 'available') throw new StowageError('INVALID_STATE', `volume ${v.name} is ${v.state}; it can be attached once available`, { state: v.state });
      const h = await this.repos.hosts.findById(trx, host.id);
      if (!h) throw new StowageError('HOST_NOT_FOUND', `host ${req.host} vanished`, {});
      if (h.state === 'fenced') throw new StowageError('INVALID_STATE', `host ${h.name} is fenced; unfence it before attaching to it`, { host: h.name });
      const same = await this.repos.attachments.findLive(trx, v.id, h.id, req.instance);
      if (same) {
        if (same.mode !== req.mode) throw new StowageError('INVALID_STATE', `volume ${v.name} is already attached ${same.mode} to ${h.name}/${req.instance}; detach it first to change the mode`, {});
        const op = await this.repos.operations.findActiveForTarget(trx, same.id);
        return { row: same, op: op ?? (await this.lastOperation(trx, same.id)) };
      }
      await this.checkExclusive(trx, v.id, v.name, v.multiattach === 1, h, req);
      const at = nowIso();
      const row: AttachmentRow = {
        id: newId('attachment'), tenant_id: ctx.tenantId, volume_id: v.id, host_id: h.id, instance: req.instance, mode: req.mode, state: 'granting',
        state_reason: null, grant_id: null, device_id: null, migration_id: req.migrationId ?? null, reported_at: null, created_at: at, updated_at: at,
      };
      await this.repos.attachments.insert(trx, row);
      const op = await this.engine.enqueue(trx, {
        kind: 'attachment.attach', tenantId: ctx.tenantId, targetType: 'attachment', targetId: row.id, actor: ctx.actor, idempotencyKey: ctx.idempotencyKey ?? null,
        input: { volumeId: v.id, hostId: h.id, instance: req.instance, mode: req.mode },
      });
      await this.repos.events.append(trx, {
        tenantId: ctx.tenantId, actor: ctx.actor, resourceType: 'attachment', resourceId: row.id, resourceName: req.instance, action: 'attach',
        from: null, to: 'granting', operationId: op.id, message: `attaching ${v.name} (${req.mode}) to ${h.name}/${req.instance}`, details: { volumeId: v.id, host: h.name },
      });
      return { row, op };
    });
    this.engine.wake();
    if (!out.op) throw new StowageError('INTERNAL', 'attachment has no operation', {});
    return { attachment: await this.present(out.row), operation: toOperation(out.op) };
  }

  /** Detaches (unplug, disconnect, revoke); repeating it while it runs returns the running operation. */
  async detach(id: string, ctx: RequestContext): Promise<{ attachment: Attachment; operation: Operation }> {
    const a = await this.resolve(id, ctx.tenantId);
    const op = await this.store.transaction(async (trx) => this.submitDetach(trx, a.id, ctx));
    this.engine.wake();
    return { attachment: await this.present((await this.repos.attachments.findById(this.store.db, a.id)) ?? a), operation: toOperation(op) };
  }

  /** Detaches every live attachment of a volume (the CLI's `volume detach VOL`). */
  async detachVolume(volumeRef: string, ctx: RequestContext, hostRef?: string): Promise<{ attachment: Attachment; operation: Operation }[]> {
    const v = await this.volumes.resolve(volumeRef, ctx.tenantId);
    const hostId = hostRef ? (await this.hostService.resolve(hostRef)).id : undefined;
    const live = (await this.repos.attachments.listLiveForVolume(this.store.db, v.id)).filter((a) => !hostId || a.host_id === hostId);
    if (live.length === 0) throw new StowageError('ATTACHMENT_NOT_FOUND', `volume ${v.name} is not attached${hostRef ? ` to ${hostRef}` : ''}`, {});
    const out: { attachment: Attachment; operation: Operation }[] = [];
    for (const a of live) out.push(await this.detach(a.id, ctx));
    return out;
  }

  /** Inserts the detach operation for an attachment inside `trx` (used by detach, migrations and evacuations). */
  async submitDetach(trx: Transaction<Database>, id: string, ctx: RequestContext): Promise<import('../store/schema.js').OperationRow> {
    const a = await this.repos.attachments.findById(trx, id);
    if (!a) throw new StowageError('ATTACHMENT_NOT_FOUND', `attachment ${id} does not exist`, {});
    const active = await this.repos.operations.findActiveForTarget(trx, a.id);
    if (active?.kind === 'attachment.detach') return active;
    if (active) throw new StowageError('INVALID_STATE', `attachment ${a.id} is busy with operation ${active.id} (${active.kind}); wait for it first`, { operationId: active.id });
    if (a.state === 'gone') throw new StowageError('INVALID_STATE', `attachment ${a.id} is already gone`, {});
    const op = await this.engine.enqueue(trx, {
      kind: 'attachment.detach', tenantId: a.tenant_id, targetType: 'attachment', targetId: a.id, actor: ctx.actor, idempotencyKey: null, input: {},
    });
    await transition(trx, 'attachment', {
      id: a.id, tenantId: a.tenant_id, to: 'disconnecting',
      event: { actor: ctx.actor, action: 'detach', resourceName: a.instance, operationId: op.id, message: `detaching from ${a.instance}`, details: { volumeId: a.volume_id, hostId: a.host_id } },
    });
    return op;
  }

  /**
   * An agent's heartbeat: registers or updates its host (addresses, initiator, connectors, VMs),
   * records which attachments are really connected, and answers with exactly what should be.
   */
  async report(hostName: string, r: AgentReport, actor: string, tenantId: string, waitMs = 0, signal?: AbortSignal): Promise<AgentAnswer> {
    const first = await this.recordReport(hostName, r, actor, tenantId);
    if (waitMs <= 0 || !inSync(first, r)) return first;
    // Long poll: hold the answer until this host's wanted set changes (or waitMs passes), so an
    // attach or detach reaches the agent in a fraction of a second instead of a heartbeat later.
    const deadline = Date.now() + waitMs;
    const host = await this.repos.hosts.findByName(this.store.db, hostName);
    if (!host) return first;
    const before = await this.wantedSignature(host.id);
    while (Date.now() < deadline && !signal?.aborted) {
      await new Promise((res) => setTimeout(res, 50));
      if ((await this.wantedSignature(host.id)) !== before) break;
    }
    const h = await this.repos.hosts.findById(this.store.db, host.id);
    return h ? { hostState: h.state === 'fenced' ? 'fenced' : 'up', heartbeatIntervalMs: this.timings.heartbeatIntervalMs, desired: h.state === 'fenced' ? [] : await this.desired(h) } : first;
  }

  /** A cheap fingerprint of what a host should have connected (attachment and grant states). */
  private async wantedSignature(hostId: string): Promise<string> {
    const rows = await this.repos.attachments.listLiveWithGrantStateForHost(this.store.db, hostId);
    const h = await this.repos.hosts.findById(this.store.db, hostId);
    return `${h?.state ?? ''}|${rows.map((x) => `${x.id}:${x.state}:${x.grant_state ?? ''}`).join(',')}`;
  }

  private async recordReport(hostName: string, r: AgentReport, actor: string, tenantId: string): Promise<AgentAnswer> {
    // Exactly the checks of POST /v1/hosts: an agent's report must not store what an operator
    // could not (addresses like "not-an-ip;rm -rf /").
    validateHost({ name: hostName, addresses: r.addresses, ...(r.initiatorName ? { initiatorName: r.initiatorName } : {}) });
    // Only a registered host may report: an agent cannot bring a host into service by itself.
    const h = await this.repos.hosts.findByName(this.store.db, hostName);
    if (h?.tenant_id !== tenantId) {
      throw new StowageError('HOST_NOT_FOUND', `host ${hostName} is not registered; register it first (stowage host create ${hostName})`, { host: hostName });
    }
    const at = nowIso();
    const wasUp = hostIsUp(h, this.timings.hostDownAfterMs);
    await this.store.transaction(async (trx) => {
      await this.repos.hosts.update(trx, h.id, {
        addresses: writeJson(r.addresses.length > 0 ? r.addresses : readJson<string[]>(h.addresses, [])),
        ...(r.initiatorName ? { initiator_name: r.initiatorName } : {}),
        connectors: writeJson(r.connectors), instances: writeJson(r.instances), agent_heartbeat_at: at, updated_at: at,
      });
      // Up only from a state a report may end, checked against the row as it is now: a fence that
      // committed after `h` was read stays (a stale report once moved a just-fenced host back to up).
      if (!wasUp) {
        await transition(trx, 'host', {
          id: h.id, tenantId: h.tenant_id, to: 'up', onlyFrom: ['down', 'unknown', 'maintenance'],
          event: { actor, action: 'up', resourceName: h.name, message: `host ${h.name}'s agent is reporting` },
        });
      }
      const connected = new Map(r.connected.map((c) => [`${c.volumeId}/${c.instance}`, c.deviceId]));
      for (const a of await this.repos.attachments.listLiveForHost(trx, h.id)) {
        const device = connected.get(`${a.volume_id}/${a.instance}`);
        if (device !== undefined) await this.repos.attachments.update(trx, a.id, { device_id: device, reported_at: at });
        else if (a.reported_at !== null) await this.repos.attachments.update(trx, a.id, { reported_at: null });
      }
    });
    const now = await this.repos.hosts.findById(this.store.db, h.id) ?? h;
    return { hostState: now.state === 'fenced' ? 'fenced' : 'up', heartbeatIntervalMs: this.timings.heartbeatIntervalMs, desired: now.state === 'fenced' ? [] : await this.desired(now) };
  }

  /** The attachments the host should have connected, with full connection info (CHAP included) for its agent. */
  private async desired(h: HostRow): Promise<DesiredAttachment[]> {
    const out: DesiredAttachment[] = [];
    for (const a of await this.repos.attachments.listWantedForHost(this.store.db, h.id)) {
      const g = a.grant_id ? await this.repos.grants.findById(this.store.db, a.grant_id) : undefined;
      if (g?.state !== 'active') continue;
      const info = readJson<ConnectionInfoModel | null>(g.connection, null);
      if (!info) continue;
      const connection = withChapSecret(g, info, this.secrets);
      out.push({ attachmentId: a.id, volumeId: a.volume_id, instance: a.instance, mode: a.mode, connection });
    }
    return out;
  }

  private async checkExclusive(trx: Executor, volumeId: VolumeId, volumeName: string, multiattach: boolean, h: HostRow, req: AttachRequest): Promise<void> {
    if (multiattach) return;
    const others = (await this.repos.attachments.listLiveForVolume(trx, volumeId)).filter((o) => o.host_id !== h.id || o.instance !== req.instance);
    const otherGrants = (await this.repos.grants.listLiveForVolume(trx, volumeId)).filter((g) => g.host_id !== h.id);
    // A live migration's destination may coexist with the same instance's source side (and its grant).
    const migrating = (instance: string): boolean => req.migrationId !== undefined && instance === req.instance;
    const conflicts = [
      ...exclusivityConflicts(others.filter((o) => !migrating(o.instance)), req.mode, multiattach).map((o) => o.host_id),
      ...exclusivityConflicts(otherGrants.filter((g) => !others.some((o) => o.host_id === g.host_id && migrating(o.instance))), req.mode, multiattach).map((g) => g.host_id),
    ];
    const first = conflicts[0];
    if (first === undefined) return;
    const holder = await this.repos.hosts.findById(trx, first);
    const name = holder?.name ?? first;
    if (holder && holder.state !== 'fenced' && !hostIsUp(holder, this.timings.hostDownAfterMs) && holder.agent_heartbeat_at !== null) {
      throw new StowageError('HOST_NOT_FENCED', `volume ${volumeName} is attached read-write to host ${name}, which is down; fence it first (stowage host fence ${name}) so it cannot write any more`, { host: name });
    }
    throw new StowageError('VOLUME_IN_USE', `volume ${volumeName} is attached to host ${name}; a read-write volume is attached to one host at a time (detach it first, or use a multi-attach volume)`, { host: name });
  }

  private async lastOperation(db: Executor, targetId: string) {
    const a = await this.repos.attachments.findById(db, targetId);
    const { rows } = await this.repos.operations.list(db, { tenantId: a?.tenant_id ?? '', targetId, limit: 1 });
    return rows[0];
  }
}

/** True when the agent already has exactly what it should (nothing to tell it yet). */
function inSync(answer: AgentAnswer, r: AgentReport): boolean {
  const want = new Set(answer.desired.map((d) => `${d.volumeId}/${d.instance}`));
  const have = new Set(r.connected.map((c) => `${c.volumeId}/${c.instance}`));
  return want.size === have.size && [...want].every((k) => have.has(k));
}
