import { StowageError } from '../core/errors.js';
import { transition } from '../store/transition.js';
import type { ConnectionInfoModel, Grant } from '../core/schemas/access-schema.js';
import type { Operation } from '../core/schemas/operation-schema.js';
import type { AccessMode } from '../drivers/sdk/types.js';
import type { OperationEngine } from '../operations/engine.js';
import { toGrant } from '../store/access-repository.js';
import { readJson } from '../store/json.js';
import { toOperation } from '../store/operation-repository.js';
import type { Executor, Store } from '../store/store.js';
import type { SecretBox } from '../system/secret-box.js';
import type { HostService } from '../hosts/host-service.js';
import type { RequestContext } from '../volumes/volume-service.js';
import type { VolumeService } from '../volumes/volume-service.js';
import { exclusivityConflicts } from './access-rules.js';
import { insertGrant, withChapSecret } from './grant-secrets.js';
import type { Repositories } from '../store/repositories.js';

/**
 * The rules of access: which hosts may reach a volume on its backend. A grant is a durable
 * operation (backend ACL + per-grant CHAP), a revoke unbinds the host and drops its live sessions.
 * A read-write grant excludes every other host; read-only grants may be shared.
 */
export class AccessService {
  constructor(
    private readonly store: Store,
    private readonly repos: Repositories,
    private readonly engine: OperationEngine,
    private readonly volumes: VolumeService,
    private readonly hostService: HostService,
    private readonly secrets: SecretBox,
  ) {}

  /** Grants `host` access to `volume` in `mode`; repeating an identical grant returns the live one. */
  async grant(volumeRef: string, hostRef: string, mode: AccessMode, ctx: RequestContext): Promise<{ grant: Grant; operation: Operation }> {
    const vol = await this.volumes.resolve(volumeRef, ctx.tenantId);
    const host = await this.hostService.usableBy(hostRef, ctx.tenantId);
    const result = await this.store.transaction(async (trx) => {
      const v = await this.volumes.resolve(vol.id, ctx.tenantId, trx);
      if (v.state !== 'available') throw new StowageError('INVALID_STATE', `volume ${v.name} is ${v.state}; access can be granted once it is available`, { state: v.state });
      if (host.state === 'fenced') {
        throw new StowageError('INVALID_STATE', `host ${host.name} is fenced; unfence it before granting it access`, { host: host.name });
      }
      const existing = await this.repos.grants.findLive(trx, v.id, host.id);
      if (existing) {
        if (existing.mode !== mode) {
          throw new StowageError('INVALID_STATE', `host ${host.name} already has ${existing.mode} access to ${v.name}; revoke it first to change the mode`, { mode: existing.mode });
        }
        if (existing.state === 'active' || existing.state === 'granting') {
          const op = await this.repos.operations.findActiveForTarget(trx, existing.id) ?? (await this.lastOperation(existing.id, trx));
          return { row: existing, op: op ? toOperation(op) : null };
        }
        throw new StowageError('INVALID_STATE', `the grant of ${host.name} on ${v.name} is ${existing.state}; wait for it or revoke it`, { state: existing.state });
      }
      // Other hosts hold the volume through their grants, and through attachments whose grant is not
      // made yet (an attach still `granting` has no grant row): both count, as they do for attach.
      const others = [
        ...(await this.repos.grants.listLiveForVolume(trx, v.id)),
        ...(await this.repos.attachments.listLiveForVolume(trx, v.id)),
      ].filter((g) => g.host_id !== host.id);
      const [conflict] = exclusivityConflicts(others, mode, v.multiattach === 1);
      if (conflict) {
        const other = await this.repos.hosts.findById(trx, conflict.host_id);
        throw new StowageError('VOLUME_IN_USE', `volume ${v.name} is granted ${conflict.mode} to host ${other?.name ?? conflict.host_id}; a read-write grant excludes every other host (revoke it, or grant read-only)`, { host: other?.name ?? conflict.host_id, mode: conflict.mode });
      }
      const row = await insertGrant(trx, this.repos.grants, { tenantId: ctx.tenantId, volumeId: v.id, host, mode }, this.secrets);
      const op = await this.engine.enqueue(trx, {
        kind: 'grant.create', tenantId: ctx.tenantId, targetType: 'grant', targetId: row.id, actor: ctx.actor, idempotencyKey: ctx.idempotencyKey ?? null,
        input: { volumeId: v.id, hostId: host.id, mode },
      });
      await this.repos.events.append(trx, {
        tenantId: ctx.tenantId, actor: ctx.actor, resourceType: 'volume', resourceId: v.id, resourceName: v.name, action: 'grant',
        from: null, to: 'granting', operationId: op.id, message: `granting ${mode} access to ${v.name} for host ${host.name}`, details: { host: host.name, mode },
      });
      return { row, op: toOperation(op) };
    });
    this.engine.wake();
    if (!result.op) throw new StowageError('INTERNAL', 'grant has no operation', {});
    return { grant: toGrant(result.row, vol.name, host.name), operation: result.op };
  }

  /** Revokes `host`'s access to `volume` (unbind + drop live sessions); a missing grant is a 404. */
  async revoke(volumeRef: string, hostRef: string, ctx: RequestContext): Promise<{ grant: Grant; operation: Operation }> {
    const vol = await this.volumes.resolve(volumeRef, ctx.tenantId);
    const host = await this.hostService.resolve(hostRef);
    const result = await this.store.transaction(async (trx) => {
      const g = await this.repos.grants.findLive(trx, vol.id, host.id);
      if (!g) throw new StowageError('NOT_FOUND', `host ${host.name} has no access to volume ${vol.name}`, { host: host.name, volume: vol.name });
      const active = await this.repos.operations.findActiveForTarget(trx, g.id);
      if (active?.kind === 'grant.revoke') return { row: g, op: toOperation(active) };
      if (active) throw new StowageError('INVALID_STATE', `grant is busy with operation ${active.id}; wait for it with \`stowage operation wait ${active.id}\``, { operationId: active.id });
      const op = await this.engine.enqueue(trx, {
        kind: 'grant.revoke', tenantId: ctx.tenantId, targetType: 'grant', targetId: g.id, actor: ctx.actor, idempotencyKey: ctx.idempotencyKey ?? null,
        input: { volumeId: vol.id, hostId: host.id },
      });
      await transition(trx, 'grant', {
        id: g.id, tenantId: ctx.tenantId, to: 'revoking',
        event: {
          actor: ctx.actor, action: 'revoke', operationId: op.id, message: `revoking access to ${vol.name} for host ${host.name}`, details: { host: host.name },
          subject: { type: 'volume', id: vol.id, name: vol.name },
        },
      });
      return { row: { ...g, state: 'revoking' as const }, op: toOperation(op) };
    });
    this.engine.wake();
    return { grant: toGrant(result.row, vol.name, host.name), operation: result.op };
  }

  /** Live grants of a volume (no secrets). */
  async listForVolume(volumeRef: string, tenantId: string): Promise<Grant[]> {
    const vol = await this.volumes.resolve(volumeRef, tenantId);
    const rows = await this.repos.grants.listLiveForVolume(this.store.db, vol.id);
    const out: Grant[] = [];
    for (const r of rows) out.push(toGrant(r, vol.name, (await this.repos.hosts.findById(this.store.db, r.host_id))?.name ?? r.host_id));
    return out;
  }

  /** The full connection info of an active grant, CHAP secret included (audited: an event records who read it). */
  async connection(volumeRef: string, hostRef: string, ctx: RequestContext): Promise<ConnectionInfoModel> {
    const vol = await this.volumes.resolve(volumeRef, ctx.tenantId);
    const host = await this.hostService.resolve(hostRef);
    const g = await this.repos.grants.findLive(this.store.db, vol.id, host.id);
    if (g?.state !== 'active') throw new StowageError('NOT_FOUND', `host ${host.name} has no active access to volume ${vol.name}`, { host: host.name });
    const info = readJson<ConnectionInfoModel | null>(g.connection, null);
    if (!info) throw new StowageError('INVALID_STATE', 'grant has no connection info yet', {});
    await this.repos.events.append(this.store.db, {
      tenantId: ctx.tenantId, actor: ctx.actor, resourceType: 'volume', resourceId: vol.id, resourceName: vol.name, action: 'connection-read',
      from: null, to: null, message: `connection info for host ${host.name} read`, details: { host: host.name },
    });
    return withChapSecret(g, info, this.secrets);
  }

  /** Inside a transaction pass its executor: a query on the store's own handle would wait for the transaction's connection forever (SQLite). */
  private async lastOperation(grantId: string, db: Executor = this.store.db) {
    const tenantId = (await this.repos.grants.findById(db, grantId))?.tenant_id ?? '';
    const { rows } = await this.repos.operations.list(db, { tenantId, targetId: grantId, limit: 1 });
    if (rows[0]) return rows[0];
    // A grant made by an attach has no operation of its own: the attachment's operation made it.
    const att = await this.repos.attachments.findLatestForGrant(db, grantId);
    if (!att) return undefined;
    return (await this.repos.operations.list(db, { tenantId, targetId: att.id, limit: 1 })).rows[0];
  }
}
