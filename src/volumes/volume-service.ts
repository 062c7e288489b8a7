import { StowageError } from '../core/errors.js';
import { DEFAULT_TENANT_ID, idOf, isId, newId, type BackendId, type VolumeId } from '../core/ids.js';
import type { Operation } from '../core/schemas/operation-schema.js';
import type { PageOf } from '../core/models.js';
import type { PlacementSummary } from '../core/schemas/placement-schema.js';
import type { CreateVolumeInput, Volume } from '../core/schemas/volume-schema.js';
import { assertValidName, assertValidTags } from '../core/names.js';
import { assertValidSize, formatSize } from '../core/sizes.js';
import { VOLUME_MACHINE, type VolumeFormat, type VolumeState } from '../core/states.js';
import { ClassService, type ClassConstraints } from '../classes/class-service.js';
import type { OperationEngine } from '../operations/engine.js';
import { decide, type PlacementDecision, type PlacementRequest } from '../placement/placement.js';
import { backendCapabilities } from '../store/backend-repository.js';
import { nowIso, writeJson } from '../store/json.js';
import { toOperation } from '../store/operation-repository.js';
import type { Database, VolumeRow } from '../store/schema.js';
import type { Executor, Store } from '../store/store.js';
import { transition } from '../store/transition.js';
import type { Transaction } from 'kysely';
import { toVolume } from '../store/volume-repository.js';
import { lockPlacement } from '../store/placement-lock.js';
import { claimOnBackend, loadBackendViews } from './placement-view.js';
import { PlacementCatalog } from './placement-catalog.js';
import { checkQuota } from '../quotas/quota-service.js';
import { visibleTo } from '../tenants/visibility.js';
import type { Repositories } from '../store/repositories.js';

/** Where a clone's data comes from and how it is made; recorded in the create operation. */
export interface CloneSource {
  readonly type: 'snapshot' | 'volume';
  readonly id: string;
  readonly name: string;
  readonly backendId: BackendId;
  readonly sizeBytes: number;
  readonly format: VolumeFormat;
  /** offload: the backend clones in constant time; backend-copy: the backend copies; host-copy: qemu-img convert here. */
  path: 'offload' | 'backend-copy' | 'host-copy';
}

/** Who is asking, and the request's idempotency key if any. */
export interface RequestContext {
  readonly actor: string;
  readonly tenantId: string;
  readonly idempotencyKey?: string | undefined;
}

/** The submitted operation and the resource as it stands right after submission. */
export interface Submitted<T> {
  readonly operation: Operation;
  readonly resource: T;
}

/** The rules of volumes: validation, placement at submit, and the operations that do the work. */
export class VolumeService {
  /** This replica's backends as placement sees them, so a create reads only its best candidates. */
  private readonly catalog: PlacementCatalog;

  constructor(private readonly store: Store, private readonly repos: Repositories, private readonly engine: OperationEngine, private readonly classes: ClassService) {
    this.catalog = new PlacementCatalog(repos.backends);
  }

  /**
   * Finds a live volume of the tenant by id or name, or throws VOLUME_NOT_FOUND (another tenant's
   * is not found either). `tenantId` null (an admin's list of every tenant's) finds one by id only:
   * names are unique only within a tenant.
   */
  async resolve(ref: string, tenantId: string | null, db: Executor = this.store.db): Promise<VolumeRow> {
    const byId = isId('volume', ref);
    const row = byId ? await this.repos.volumes.findById(db, ref) : tenantId === null ? undefined : await this.repos.volumes.findLiveByName(db, tenantId, ref);
    if (!row || (tenantId !== null && row.tenant_id !== tenantId) || (row.state === 'deleted' && !byId)) {
      const hint = tenantId === null && !byId ? '; across tenants, name it by its id' : '; see `stowage volume list`';
      throw new StowageError('VOLUME_NOT_FOUND', `volume "${ref}" does not exist${hint}`, { volume: ref });
    }
    return row;
  }

  async get(ref: string, tenantId: string): Promise<Volume> {
    return this.present(await this.resolve(ref, tenantId));
  }

  /** One page of the tenant's volumes (every tenant's when `tenantId` is null). */
  async list(q: { tenantId: string | null; backend?: string; state?: VolumeState; limit: number; cursor?: string }): Promise<PageOf<Volume>> {
    const backendId = q.backend ? (await this.resolveBackendId(q.backend, q.tenantId)) : undefined;
    const { rows, nextCursor } = await this.repos.volumes.list(this.store.db, {
      tenantId: q.tenantId, limit: q.limit,
      ...(backendId ? { backendId } : {}), ...(q.state ? { state: q.state } : {}), ...(q.cursor ? { cursor: q.cursor } : {}),
    });
    const names = await this.repos.backends.namesOf(this.store.db, rows.flatMap((r) => (r.backend_id ? [r.backend_id] : [])));
    return { items: rows.map((r) => toVolume(r, r.backend_id ? names.get(r.backend_id) ?? null : null)), nextCursor };
  }

  /** What placement would decide for this request right now (class applied), changing nothing. */
  async dryRun(input: CreateVolumeInput, tenantId: string): Promise<PlacementDecision> {
    validateCreate(input);
    const cls = await this.classes.constraintsFor(input.class, tenantId);
    const request = placementRequest(input, [], cls, tenantId);
    const views = await loadBackendViews(this.store.db, this.repos.backends, tenantId);
    const pinned = input.backend ? await this.resolveBackendId(input.backend, tenantId) : null;
    return decide(pinned ? views.filter((v) => v.id === pinned) : views, request);
  }

  /**
   * Validates, places, and records in one transaction: the volume (`creating`, on its backend), its
   * create operation, and a held capacity claim on that backend for the full size, so concurrent
   * placements (in this process or another replica) see the space as taken. Unplaceable requests
   * fail with NO_VALID_BACKEND and leave nothing behind.
   */
  async create(input: CreateVolumeInput, ctx: RequestContext): Promise<Submitted<Volume>> {
    return this.once(ctx, 'volume.create', () => this.submitCreate(input, ctx));
  }

  private async submitCreate(input: CreateVolumeInput, ctx: RequestContext): Promise<Submitted<Volume>> {
    const cls = await this.classes.constraintsFor(input.class, ctx.tenantId);
    // A class may say clones are copied on the host (e.g. to keep them independent of the source).
    const source = await this.cloneSource(cls?.offload === false ? { ...input, offload: false } : input, ctx.tenantId);
    if (source) {
      // 0 means "the source's size" (clones only; a plain create with 0 fails validation below).
      const sizeBytes = input.sizeBytes === 0 ? source.sizeBytes : input.sizeBytes;
      if (sizeBytes < source.sizeBytes) {
        throw new StowageError('SHRINK_NOT_SUPPORTED', `a clone of ${source.name} needs at least ${formatSize(source.sizeBytes)}`, { sourceSizeBytes: source.sizeBytes });
      }
      input = { ...input, sizeBytes, format: source.path === 'host-copy' ? input.format ?? source.format : source.format };
    }
    validateCreate(input);
    let pinned = input.backend ? await this.resolveBackendId(input.backend, ctx.tenantId) : null;
    // A volume cloned onto another backend it names is copied there (streamed when a node is on either side).
    if (source?.type === 'volume' && source.path === 'offload' && pinned && pinned !== source.backendId) source.path = 'host-copy';
    if (source && source.path !== 'host-copy') {
      if (pinned && pinned !== source.backendId) throw new StowageError('VALIDATION_FAILED', `a clone of ${source.type} ${source.name} made on the backend stays on its backend`, {});
      pinned = source.backendId;
    }
    const existing = await this.idempotent(ctx, 'volume.create');
    if (existing) return existing;
    const request = placementRequest(input, [], cls, ctx.tenantId);
    const id = newId('volume');
    const placed = await this.store.transaction(async (trx) => {
      if (await this.repos.volumes.findLiveByName(trx, ctx.tenantId, input.name)) {
        throw new StowageError('NAME_TAKEN', `a volume named "${input.name}" already exists`, { name: input.name });
      }
      await lockPlacement(trx, this.store.dialect);
      // After the placement lock: racing creates (any replica) see each other's rows, so a quota is never exceeded.
      await checkQuota(trx, this.store.dialect, this.repos, { tenantId: ctx.tenantId, classId: cls?.id ?? null, addVolumes: 1, addBytes: input.sizeBytes });
      let decision = await this.catalog.decide(trx, request, ctx.tenantId, pinned);
      if (source?.path === 'offload' && !input.backend && !decision.winner) {
        // The source's backend cannot take the clone: copy it on the host to wherever fits.
        source.path = 'host-copy';
        pinned = null;
        decision = await this.catalog.decide(trx, request, ctx.tenantId, null);
      }
      if (!decision.winner) {
        throw new StowageError('NO_VALID_BACKEND', `cannot place ${formatSize(input.sizeBytes)} volume "${input.name}": ${decision.summary.reason}`, {
          rejected: decision.summary.rejected,
          verdicts: decision.verdicts.map((v) => ({ backend: v.backend, filter: v.filter, reason: v.reason })),
        });
      }
      const summary: PlacementSummary = { ...decision.summary, pinned: pinned !== null };
      const at = nowIso();
      const volume: VolumeRow = {
        id, tenant_id: ctx.tenantId, name: input.name, backend_id: idOf('backend', decision.winner.id), state: 'creating', state_reason: null,
        size_bytes: input.sizeBytes, format: input.format ?? 'raw', driver_handle: null, placement: writeJson(summary),
        created_at: at, updated_at: at, deleted_at: null, class_id: cls?.id ?? null, multiattach: input.multiattach === true ? 1 : 0,
      };
      await this.repos.volumes.insert(trx, volume);
      const row = await this.engine.enqueue(trx, {
        kind: 'volume.create', tenantId: ctx.tenantId, targetType: 'volume', targetId: id, actor: ctx.actor, idempotencyKey: ctx.idempotencyKey ?? null,
        input: { name: input.name, sizeBytes: input.sizeBytes, format: input.format ?? 'raw', request, pinned: pinned !== null, ...(source ? { source } : {}) },
      });
      await this.repos.claims.hold(trx, { backendId: idOf('backend', decision.winner.id), resourceType: 'volume', resourceId: id, operationId: row.id, bytes: input.sizeBytes });
      await this.repos.events.append(trx, {
        tenantId: ctx.tenantId, actor: ctx.actor, resourceType: 'volume', resourceId: id, resourceName: input.name, action: 'create',
        from: null, to: 'creating', operationId: row.id,
        message: `volume ${input.name} (${formatSize(input.sizeBytes)}) placed on ${decision.winner.name}: ${summary.reason}${source ? `; clone of ${source.type} ${source.name} by ${source.path}` : ''}`,
      });
      return { row, volume, backend: decision.winner };
    });
    this.catalog.claimed(placed.backend.id, input.sizeBytes);
    this.engine.wake();
    // The volume as this transaction wrote it: what was submitted, even if a worker already took it up.
    return { operation: toOperation(placed.row), resource: toVolume(placed.volume, placed.backend.name) };
  }

  /**
   * Grows a volume. The extra size is claimed on its backend at submit (same transaction, same
   * capacity function as placement); the volume keeps its old size until the grow succeeds, when the
   * new size and the claim's commit land together. A failed grow releases the claim.
   */
  async resize(ref: string, sizeBytes: number, ctx: RequestContext): Promise<Submitted<Volume>> {
    return this.once(ctx, 'volume.resize', () => this.submitResize(ref, sizeBytes, ctx));
  }

  private async submitResize(ref: string, sizeBytes: number, ctx: RequestContext): Promise<Submitted<Volume>> {
    assertValidSize(sizeBytes);
    const existing = await this.idempotent(ctx, 'volume.resize');
    if (existing) return existing;
    const vol = await this.resolve(ref, ctx.tenantId);
    const op = await this.store.transaction(async (trx) => {
      const v = await this.lockVolume(trx, vol.id, VOLUME_MACHINE.sourcesOf('resizing'), 'resize');
      const current = Number(v.size_bytes);
      if (sizeBytes < current) {
        throw new StowageError('SHRINK_NOT_SUPPORTED', `volume ${v.name} is ${formatSize(current)}; shrinking to ${formatSize(sizeBytes)} would destroy data and is not supported`, { sizeBytes: current, requested: sizeBytes });
      }
      if (sizeBytes === current) {
        throw new StowageError('INVALID_STATE', `volume ${v.name} is already ${formatSize(current)}`, { sizeBytes: current });
      }
      if (!v.backend_id) throw new StowageError('INVALID_STATE', `volume ${v.name} has no backend`, {});
      const delta = sizeBytes - current;
      await checkQuota(trx, this.store.dialect, this.repos, { tenantId: ctx.tenantId, classId: v.class_id, addBytes: delta });
      const row = await this.engine.enqueue(trx, {
        kind: 'volume.resize', tenantId: ctx.tenantId, targetType: 'volume', targetId: v.id, actor: ctx.actor, idempotencyKey: ctx.idempotencyKey ?? null,
        input: { sizeBytes, previousSizeBytes: current },
      });
      await claimOnBackend(trx, this.store.dialect, this.repos, { backendId: v.backend_id, resourceType: 'volume', resourceId: v.id, operationId: row.id, bytes: delta }, `growing ${v.name}`);
      await transition(trx, 'volume', {
        id: v.id, tenantId: ctx.tenantId, to: 'resizing', patch: { state_reason: null },
        event: { actor: ctx.actor, action: 'resize', resourceName: v.name, operationId: row.id, message: `volume ${v.name} growing from ${formatSize(current)} to ${formatSize(sizeBytes)}` },
      });
      return row;
    });
    this.engine.wake();
    return { operation: toOperation(op), resource: await this.get(vol.id, ctx.tenantId) };
  }

  /** Deletes a volume (available or error); the data is removed by the operation. */
  async delete(ref: string, ctx: RequestContext): Promise<Submitted<Volume>> {
    return this.once(ctx, 'volume.delete', () => this.submitDelete(ref, ctx));
  }

  private async submitDelete(ref: string, ctx: RequestContext): Promise<Submitted<Volume>> {
    const existing = await this.idempotent(ctx, 'volume.delete');
    if (existing) return existing;
    const vol = await this.resolve(ref, ctx.tenantId);
    const op = await this.store.transaction(async (trx) => {
      const v = await this.lockVolume(trx, vol.id, VOLUME_MACHINE.sourcesOf('deleting'), 'delete');
      const grants = await this.repos.grants.listLiveForVolume(trx, v.id);
      if (grants.length > 0) {
        throw new StowageError('VOLUME_IN_USE', `volume ${v.name} is still accessible to ${grants.length} host(s); detach or revoke first (stowage volume detach ${v.name})`, { grantCount: grants.length });
      }
      const snaps = await this.repos.snapshots.countLiveForVolume(trx, v.id);
      if (snaps > 0) {
        throw new StowageError('VOLUME_IN_USE', `volume ${v.name} has ${snaps} snapshot(s); delete them first (stowage snapshot list --volume ${v.name})`, { snapshotCount: snaps });
      }
      const row = await this.engine.enqueue(trx, {
        kind: 'volume.delete', tenantId: ctx.tenantId, targetType: 'volume', targetId: v.id, actor: ctx.actor, idempotencyKey: ctx.idempotencyKey ?? null,
        input: { previousState: v.state },
      });
      await transition(trx, 'volume', {
        id: v.id, tenantId: ctx.tenantId, to: 'deleting', patch: { state_reason: null },
        event: { actor: ctx.actor, action: 'delete', resourceName: v.name, operationId: row.id, message: `volume ${v.name} deleting` },
      });
      return row;
    });
    this.engine.wake();
    return { operation: toOperation(op), resource: await this.get(vol.id, ctx.tenantId) };
  }

  /** Resolves a clone's source and picks how it will be copied (offload when the backend can). */
  private async cloneSource(input: CreateVolumeInput, tenantId: string): Promise<CloneSource | null> {
    if (input.fromSnapshot && input.fromVolume) throw new StowageError('VALIDATION_FAILED', 'give either fromSnapshot or fromVolume, not both', {});
    if (input.fromSnapshot) {
      const ref = input.fromSnapshot;
      const s = isId('snapshot', ref) ? await this.repos.snapshots.findById(this.store.db, ref) : await this.repos.snapshots.findLiveByName(this.store.db, tenantId, ref);
      if (s?.tenant_id !== tenantId || s.state === 'deleted') throw new StowageError('SNAPSHOT_NOT_FOUND', `snapshot "${ref}" does not exist; see \`stowage snapshot list\``, { snapshot: ref });
      if (s.state !== 'available') throw new StowageError('INVALID_STATE', `snapshot ${s.name} is ${s.state}`, { state: s.state });
      const src = await this.repos.volumes.findById(this.store.db, s.volume_id);
      const caps = await this.capabilitiesOf(s.backend_id);
      return { type: 'snapshot', id: s.id, name: s.name, backendId: s.backend_id, sizeBytes: Number(s.size_bytes), format: src?.format ?? 'raw', path: caps.includes('clone.offload') ? 'offload' : 'backend-copy' };
    }
    if (input.fromVolume) {
      const v = await this.resolve(input.fromVolume, tenantId);
      if (v.state !== 'available' || !v.backend_id) throw new StowageError('INVALID_STATE', `volume ${v.name} is ${v.state}; clones are made of available volumes`, { state: v.state });
      const caps = await this.capabilitiesOf(v.backend_id);
      const offload = input.offload !== false && caps.includes('clone.offload');
      return { type: 'volume', id: v.id, name: v.name, backendId: v.backend_id, sizeBytes: Number(v.size_bytes), format: v.format, path: offload ? 'offload' : 'host-copy' };
    }
    return null;
  }

  /** One backend's capabilities (without loading the whole fleet's usage as placement does). */
  private async capabilitiesOf(backendId: BackendId): Promise<string[]> {
    const b = await this.repos.backends.findById(this.store.db, backendId);
    return b ? backendCapabilities(b) : [];
  }

  /** Maps a row to the API model with its backend's name. */
  async present(row: VolumeRow): Promise<Volume> {
    const b = row.backend_id ? await this.repos.backends.findById(this.store.db, row.backend_id) : undefined;
    return toVolume(row, b?.name ?? null);
  }

  private async lockVolume(trx: Transaction<Database>, id: VolumeId, allowed: readonly VolumeState[], verb: string): Promise<VolumeRow> {
    const v = await this.repos.volumes.findById(trx, id);
    if (!v) throw new StowageError('VOLUME_NOT_FOUND', `volume ${id} does not exist`, { volume: id });
    const active = await this.repos.operations.findActiveForTarget(trx, id);
    if (active) {
      throw new StowageError('INVALID_STATE', `volume ${v.name} is busy with operation ${active.id} (${active.kind}); wait for it with \`stowage operation wait ${active.id}\``, { operationId: active.id, state: v.state });
    }
    if (!allowed.includes(v.state)) {
      throw new StowageError('INVALID_STATE', `cannot ${verb} volume ${v.name} while it is ${v.state}`, { state: v.state, allowed });
    }
    return v;
  }

  /** A backend `tenantId` may use (one restricted to other tenants is BACKEND_NOT_FOUND, as one that does not exist). */
  private async resolveBackendId(ref: string, tenantId: string | null): Promise<BackendId> {
    const row = isId('backend', ref) ? await this.repos.backends.findById(this.store.db, ref) : await this.repos.backends.findByName(this.store.db, ref);
    if (!row || (tenantId !== null && !visibleTo(row.tenants, tenantId))) throw new StowageError('BACKEND_NOT_FOUND', `backend "${ref}" does not exist; see \`stowage backend list\``, { backend: ref });
    return row.id;
  }

  /**
   * Runs a submit; when it fails because a concurrent request with the same Idempotency-Key won the
   * race (unique key, name taken, volume busy), answers with the winner's operation instead.
   */
  private async once(ctx: RequestContext, kind: string, submit: () => Promise<Submitted<Volume>>): Promise<Submitted<Volume>> {
    try {
      return await submit();
    } catch (err) {
      const winner = ctx.idempotencyKey ? await this.idempotent(ctx, kind).catch(() => null) : null;
      if (winner) return winner;
      throw err;
    }
  }

  /** A repeated request with the same Idempotency-Key gets the first one's operation back. */
  private async idempotent(ctx: RequestContext, kind: string): Promise<Submitted<Volume> | null> {
    if (!ctx.idempotencyKey) return null;
    const op = await this.repos.operations.findByIdempotencyKey(this.store.db, ctx.tenantId, ctx.idempotencyKey);
    if (!op) return null;
    if (op.kind !== kind) {
      throw new StowageError('IDEMPOTENCY_CONFLICT', `Idempotency-Key "${ctx.idempotencyKey}" was already used for a ${op.kind} request`, { operationId: op.id });
    }
    const v = await this.repos.volumes.findById(this.store.db, idOf('volume', op.target_id));
    if (!v) throw new StowageError('VOLUME_NOT_FOUND', `volume ${op.target_id} does not exist`, {});
    return { operation: toOperation(op), resource: await this.present(v) };
  }
}

function validateCreate(input: CreateVolumeInput): void {
  assertValidName(input.name, 'volume name');
  assertValidSize(input.sizeBytes);
  assertValidTags(input.requiredTags ?? []);
  if (input.zone) assertValidName(input.zone, 'zone');
}

/**
 * The placement request for a create (exclusions grow as backends fail): the class's constraints
 * plus the request's own. Tags and capabilities add up; the request's policy overrides the class's;
 * a zone given by both must agree.
 */
export function placementRequest(input: CreateVolumeInput, exclude: readonly string[], cls: ClassConstraints | null = null, tenantId: string | null = null): PlacementRequest {
  if (cls?.zone && input.zone && cls.zone !== input.zone) {
    throw new StowageError('VALIDATION_FAILED', `storage class ${cls.name} places in zone ${cls.zone}; the request asks for zone ${input.zone}`, { class: cls.name, zone: input.zone });
  }
  const union = (a: readonly string[], b: readonly string[]): string[] => [...new Set([...a, ...b])];
  return {
    sizeBytes: input.sizeBytes,
    kind: cls?.kind ?? 'block',
    requiredTags: union(cls?.requiredTags ?? [], input.requiredTags ?? []),
    forbiddenTags: [...(cls?.forbiddenTags ?? [])],
    requiredCapabilities: union(cls?.requiredCapabilities ?? [], [...(input.format === 'qcow2' ? ['format.qcow2'] : []), ...(input.multiattach === true ? ['multiattach'] : [])]),
    zone: input.zone ?? cls?.zone ?? null,
    policy: input.policy ?? cls?.policy ?? 'cheapest',
    className: cls?.name ?? null,
    exclude,
    tenantId,
  };
}

export { DEFAULT_TENANT_ID };
