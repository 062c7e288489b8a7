import { StowageError } from '../core/errors.js';
import { isId, newId } from '../core/ids.js';
import type { Operation } from '../core/schemas/operation-schema.js';
import type { Snapshot } from '../core/schemas/snapshot-schema.js';
import type { Volume } from '../core/schemas/volume-schema.js';
import type { PageOf } from '../core/models.js';
import { assertValidName } from '../core/names.js';
import type { DriverCache } from '../backends/driver-cache.js';
import type { OperationEngine } from '../operations/engine.js';
import { toSnapshot } from '../store/access-repository.js';
import { backendCapabilities } from '../store/backend-repository.js';
import { claimOnBackend } from '../volumes/placement-view.js';
import { checkQuota } from '../quotas/quota-service.js';
import { isUniqueViolation, nowIso } from '../store/json.js';
import { transition } from '../store/transition.js';
import { toOperation } from '../store/operation-repository.js';
import type { PageRequest } from '../store/keyset-page.js';
import type { SnapshotRow } from '../store/schema.js';
import type { Executor, Store } from '../store/store.js';
import type { RequestContext, VolumeService } from '../volumes/volume-service.js';
import { requirePort } from '../drivers/sdk/ports.js';
import type { Repositories } from '../store/repositories.js';

/** The rules of snapshots: taken on the volume's backend, deleted, and used to revert a volume. */
export class SnapshotService {
  constructor(private readonly store: Store, private readonly repos: Repositories, private readonly engine: OperationEngine, private readonly volumes: VolumeService, private readonly drivers: DriverCache) {}

  async resolve(ref: string, tenantId: string, db: Executor = this.store.db): Promise<SnapshotRow> {
    const row = isId('snapshot', ref) ? await this.repos.snapshots.findById(db, ref) : await this.repos.snapshots.findLiveByName(db, tenantId, ref);
    if (row?.tenant_id !== tenantId || (row.state === 'deleted' && !isId('snapshot', ref))) {
      throw new StowageError('SNAPSHOT_NOT_FOUND', `snapshot "${ref}" does not exist; see \`stowage snapshot list\``, { snapshot: ref });
    }
    return row;
  }

  async get(ref: string, tenantId: string): Promise<Snapshot> {
    const s = await this.resolve(ref, tenantId);
    return toSnapshot(s, (await this.repos.volumes.findById(this.store.db, s.volume_id))?.name ?? null);
  }

  /** One page of a tenant's snapshots (of one volume if given), oldest first. */
  async list(tenantId: string | null, volumeRef: string | undefined, page: PageRequest): Promise<PageOf<Snapshot>> {
    const volumeId = volumeRef ? (await this.volumes.resolve(volumeRef, tenantId)).id : undefined;
    const { rows, nextCursor } = await this.repos.snapshots.page(this.store.db, tenantId, volumeId, page);
    const names = new Map<string, string>();
    for (const r of rows) if (!names.has(r.volume_id)) names.set(r.volume_id, (await this.repos.volumes.findById(this.store.db, r.volume_id))?.name ?? r.volume_id);
    return { items: rows.map((r) => toSnapshot(r, names.get(r.volume_id) ?? null)), nextCursor };
  }

  /** Takes a snapshot of an available volume on its own backend. */
  async create(volumeRef: string, name: string, ctx: RequestContext): Promise<{ snapshot: Snapshot; operation: Operation }> {
    assertValidName(name, 'snapshot name');
    const vol = await this.volumes.resolve(volumeRef, ctx.tenantId);
    const backend = vol.backend_id ? await this.repos.backends.findById(this.store.db, vol.backend_id) : undefined;
    if (!backend) throw new StowageError('INVALID_STATE', `volume ${vol.name} has no backend`, {});
    const caps = backendCapabilities(backend);
    // A backend that cannot offload snapshots copies the data: that space is claimed like a volume's.
    const consumesSpace = !caps.includes('snapshot.offload');
    requirePort(this.drivers.get(backend), 'snapshots', backend.name);
    const id = newId('snapshot');
    const op = await this.store.transaction(async (trx) => {
      const v = await this.volumes.resolve(vol.id, ctx.tenantId, trx);
      if (v.state !== 'available') throw new StowageError('INVALID_STATE', `volume ${v.name} is ${v.state}; snapshots are taken of available volumes`, { state: v.state });
      // Takes the placement lock, as every claim does, so racing snapshots cannot pass the quota together.
      await checkQuota(trx, this.store.dialect, this.repos, { tenantId: ctx.tenantId, classId: v.class_id, addSnapshots: 1 });
      const at = nowIso();
      try {
        await this.repos.snapshots.insert(trx, {
          id, tenant_id: ctx.tenantId, name, volume_id: v.id, backend_id: backend.id, state: 'creating', state_reason: null,
          size_bytes: Number(v.size_bytes), driver_handle: null, method: null, created_at: at, updated_at: at, deleted_at: null,
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw new StowageError('NAME_TAKEN', `a snapshot named "${name}" already exists`, { name });
        throw err;
      }
      const row = await this.engine.enqueue(trx, { kind: 'snapshot.create', tenantId: ctx.tenantId, targetType: 'snapshot', targetId: id, actor: ctx.actor, idempotencyKey: ctx.idempotencyKey ?? null, input: { volumeId: v.id } });
      if (consumesSpace) {
        await claimOnBackend(trx, this.store.dialect, this.repos, { backendId: backend.id, resourceType: 'snapshot', resourceId: id, operationId: row.id, bytes: Number(v.size_bytes) }, `a copied snapshot of ${v.name}`);
      }
      await this.repos.events.append(trx, { tenantId: ctx.tenantId, actor: ctx.actor, resourceType: 'snapshot', resourceId: id, resourceName: name, action: 'create', from: null, to: 'creating', operationId: row.id, message: `snapshot ${name} of ${v.name} being taken` });
      return row;
    });
    this.engine.wake();
    return { snapshot: await this.get(id, ctx.tenantId), operation: toOperation(op) };
  }

  async delete(ref: string, ctx: RequestContext): Promise<{ snapshot: Snapshot; operation: Operation }> {
    const snap = await this.resolve(ref, ctx.tenantId);
    const op = await this.store.transaction(async (trx) => {
      const s = await this.resolve(snap.id, ctx.tenantId, trx);
      const active = await this.repos.operations.findActiveForTarget(trx, s.id);
      if (active) throw new StowageError('INVALID_STATE', `snapshot ${s.name} is busy with operation ${active.id}`, { operationId: active.id });
      if (s.state !== 'available' && s.state !== 'error') throw new StowageError('INVALID_STATE', `cannot delete snapshot ${s.name} while it is ${s.state}`, { state: s.state });
      const row = await this.engine.enqueue(trx, { kind: 'snapshot.delete', tenantId: ctx.tenantId, targetType: 'snapshot', targetId: s.id, actor: ctx.actor, idempotencyKey: ctx.idempotencyKey ?? null, input: {} });
      await transition(trx, 'snapshot', { id: s.id, tenantId: ctx.tenantId, to: 'deleting', event: { actor: ctx.actor, action: 'delete', resourceName: s.name, operationId: row.id, message: `snapshot ${s.name} deleting` } });
      return row;
    });
    this.engine.wake();
    return { snapshot: await this.get(snap.id, ctx.tenantId), operation: toOperation(op) };
  }

  /** Reverts a volume to one of its snapshots; refused while any host has access (its view would change under it). */
  async revert(volumeRef: string, snapshotRef: string, ctx: RequestContext): Promise<{ volume: Volume; operation: Operation }> {
    const vol = await this.volumes.resolve(volumeRef, ctx.tenantId);
    const snap = await this.resolve(snapshotRef, ctx.tenantId);
    if (snap.volume_id !== vol.id) throw new StowageError('VALIDATION_FAILED', `snapshot ${snap.name} belongs to another volume`, { snapshot: snap.name });
    const op = await this.store.transaction(async (trx) => {
      const v = await this.volumes.resolve(vol.id, ctx.tenantId, trx);
      const active = await this.repos.operations.findActiveForTarget(trx, v.id);
      if (active) throw new StowageError('INVALID_STATE', `volume ${v.name} is busy with operation ${active.id}`, { operationId: active.id });
      if (v.state !== 'available') throw new StowageError('INVALID_STATE', `cannot revert volume ${v.name} while it is ${v.state}`, { state: v.state });
      if (snap.state !== 'available') throw new StowageError('INVALID_STATE', `snapshot ${snap.name} is ${snap.state}`, { state: snap.state });
      const live = await this.repos.grants.listLiveForVolume(trx, v.id);
      if (live.length > 0) throw new StowageError('VOLUME_IN_USE', `volume ${v.name} is accessible to ${live.length} host(s); revoke access before reverting`, { grantCount: live.length });
      const row = await this.engine.enqueue(trx, { kind: 'volume.revert', tenantId: ctx.tenantId, targetType: 'volume', targetId: v.id, actor: ctx.actor, idempotencyKey: ctx.idempotencyKey ?? null, input: { snapshotId: snap.id } });
      await transition(trx, 'volume', { id: v.id, tenantId: ctx.tenantId, to: 'reverting', event: { actor: ctx.actor, action: 'revert', resourceName: v.name, operationId: row.id, message: `volume ${v.name} reverting to snapshot ${snap.name}` } });
      return row;
    });
    this.engine.wake();
    return { volume: await this.volumes.get(vol.id, ctx.tenantId), operation: toOperation(op) };
  }
}
