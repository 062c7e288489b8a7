import { StowageError } from '../core/errors.js';
import { DEFAULT_TENANT_ID, isId, newId } from '../core/ids.js';
import { assertValidName, assertValidTags } from '../core/names.js';
import type { BackendKind } from '../core/states.js';
import { CAPABILITIES } from '../core/capabilities.js';
import type { OperationEngine } from '../operations/engine.js';
import type { PlacementPolicy } from '../placement/placement.js';
import { nowIso, readJson, writeJson, isUniqueViolation } from '../store/json.js';
import type { PageOf } from '../core/models.js';
import type { PageRequest } from '../store/keyset-page.js';
import type { ClassRow, ClassUpdate } from '../store/schema.js';
import type { Executor, Store } from '../store/store.js';
import type { CreateClassInput, StorageClass, UpdateClassInput } from '../core/schemas/class-schema.js';
import type { Repositories } from '../store/repositories.js';
import { ADMIN_VIEW, restrictedTo, tenantNames, tenantsColumn, visibleTo, type Viewer } from '../tenants/visibility.js';

/** The placement constraints a class adds to a request. */
export interface ClassConstraints {
  readonly id: string;
  readonly name: string;
  readonly kind: BackendKind;
  readonly zone: string | null;
  readonly requiredTags: readonly string[];
  readonly forbiddenTags: readonly string[];
  readonly requiredCapabilities: readonly string[];
  readonly policy: PlacementPolicy;
  /** False: clones must be copied on the host. */
  readonly offload: boolean;
}

/** The rules of storage classes: validation, one default at most, no deleting a class in use. */
export class ClassService {
  constructor(private readonly store: Store, private readonly repos: Repositories, private readonly engine: OperationEngine) {}

  /** Finds a class by id or name (one `usableBy` that tenant may use), or throws CLASS_NOT_FOUND. */
  async resolve(ref: string, db: Executor = this.store.db, usableBy?: string): Promise<ClassRow> {
    const row = isId('class', ref) ? await this.repos.classes.findById(db, ref) : await this.repos.classes.findByName(db, ref);
    if (!row || (usableBy !== undefined && !visibleTo(row.tenants, usableBy))) throw new StowageError('CLASS_NOT_FOUND', `storage class "${ref}" does not exist; see \`stowage class list\``, { class: ref });
    return row;
  }

  /** A class `tenantId` may use: one restricted to other tenants is CLASS_NOT_FOUND, exactly as one that does not exist. */
  async usableBy(ref: string, tenantId: string, db: Executor = this.store.db): Promise<ClassRow> {
    return this.resolve(ref, db, tenantId);
  }

  /**
   * The constraints of the named class, or of the default class when `ref` is absent (null when
   * there is none), for a request of `tenantId` (the default class is always shared).
   */
  async constraintsFor(ref: string | undefined, tenantId: string, db: Executor = this.store.db): Promise<ClassConstraints | null> {
    const row = ref !== undefined ? await this.usableBy(ref, tenantId, db) : await this.repos.classes.findDefault(db);
    return row ? toConstraints(row) : null;
  }

  /** A class as `viewer` sees it: admins see every class and whom it is restricted to; others only theirs, with their own volume count. */
  async get(ref: string, viewer: Viewer = ADMIN_VIEW): Promise<StorageClass> {
    return this.present(viewer.admin ? await this.resolve(ref) : await this.usableBy(ref, viewer.tenantId), viewer);
  }

  /** One page of classes by name (those `viewer` may use, unless an admin), each with how many volumes use it. */
  async list(page: PageRequest, viewer: Viewer = ADMIN_VIEW): Promise<PageOf<StorageClass>> {
    const { rows, nextCursor } = await this.repos.classes.page(this.store.db, page, viewer.admin ? undefined : viewer.tenantId);
    return { items: await Promise.all(rows.map((r) => this.present(r, viewer))), nextCursor };
  }

  private async present(row: ClassRow, viewer: Viewer): Promise<StorageClass> {
    if (!viewer.admin) return toStorageClass(row, await this.repos.classes.countVolumes(this.store.db, row.id, viewer.tenantId));
    return { ...toStorageClass(row, await this.repos.classes.countVolumes(this.store.db, row.id)), tenants: await tenantNames(this.store.db, this.repos, row.tenants) };
  }

  /**
   * Creates a class. With an Idempotency-Key whose class.create already committed (the process died
   * before it answered), answers that class instead of NAME_TAKEN: the idempotency layer has already
   * checked that this is the same request.
   */
  async create(input: CreateClassInput, actor: string, idempotencyKey?: string): Promise<StorageClass> {
    assertValidName(input.name, 'class name');
    validateConstraints(input);
    const first = await this.createdBy(idempotencyKey);
    if (first) return this.get(first);
    assertDefaultShared(input.default === true, input.tenants ?? null);
    const tenants = await tenantsColumn(this.store.db, this.repos, input.tenants ?? null);
    const id = newId('class');
    const at = nowIso();
    await this.store.transaction(async (trx) => {
      if (await this.repos.classes.findByName(trx, input.name)) {
        throw new StowageError('NAME_TAKEN', `a storage class named "${input.name}" already exists`, { name: input.name });
      }
      if (input.default === true) await this.repos.classes.clearDefault(trx);
      try {
        await this.repos.classes.insert(trx, {
          id, name: input.name, description: input.description ?? '', kind: input.kind ?? 'block', zone: input.zone ?? null,
          required_tags: writeJson(input.requiredTags ?? []), forbidden_tags: writeJson(input.forbiddenTags ?? []),
          required_capabilities: writeJson(input.requiredCapabilities ?? []), policy: input.policy ?? 'cheapest',
          is_default: input.default === true ? 1 : 0, offload: input.offload === false ? 0 : 1, tenants, created_at: at, updated_at: at,
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw new StowageError('NAME_TAKEN', `a storage class named "${input.name}" already exists`, { name: input.name });
        throw err;
      }
      await this.journal(trx, actor, id, input.name, 'create', `storage class ${input.name} created${input.default === true ? ' (default)' : ''}`, { ...input }, idempotencyKey);
    });
    await this.engine.recorded('class.create');
    return this.get(id);
  }

  async update(ref: string, patch: UpdateClassInput, actor: string): Promise<StorageClass> {
    validateConstraints({ ...patch, zone: patch.zone ?? undefined });
    const row = await this.resolve(ref);
    assertDefaultShared(patch.default ?? row.is_default === 1, patch.tenants === undefined ? restrictedTo(row.tenants) : patch.tenants);
    const tenants = patch.tenants === undefined ? undefined : await tenantsColumn(this.store.db, this.repos, patch.tenants);
    await this.store.transaction(async (trx) => {
      if (patch.default === true) await this.repos.classes.clearDefault(trx);
      const set: ClassUpdate = { updated_at: nowIso() };
      if (patch.description !== undefined) set.description = patch.description;
      if (patch.kind !== undefined) set.kind = patch.kind;
      if (patch.zone !== undefined) set.zone = patch.zone === '' ? null : patch.zone;
      if (patch.requiredTags !== undefined) set.required_tags = writeJson(patch.requiredTags);
      if (patch.forbiddenTags !== undefined) set.forbidden_tags = writeJson(patch.forbiddenTags);
      if (patch.requiredCapabilities !== undefined) set.required_capabilities = writeJson(patch.requiredCapabilities);
      if (patch.policy !== undefined) set.policy = patch.policy;
      if (patch.default !== undefined) set.is_default = patch.default ? 1 : 0;
      if (patch.offload !== undefined) set.offload = patch.offload ? 1 : 0;
      if (tenants !== undefined) set.tenants = tenants;
      await this.repos.classes.update(trx, row.id, set);
      await this.journal(trx, actor, row.id, row.name, 'update', `storage class ${row.name} updated: ${Object.keys(patch).join(', ')}`, { ...patch });
    });
    await this.engine.recorded('class.update');
    return this.get(row.id);
  }

  /** Deletes a class no live volume uses (CLASS_IN_USE otherwise). */
  async delete(ref: string, actor: string): Promise<void> {
    const row = await this.resolve(ref);
    await this.store.transaction(async (trx) => {
      const n = await this.repos.classes.countVolumes(trx, row.id);
      if (n > 0) {
        throw new StowageError('CLASS_IN_USE', `storage class ${row.name} is used by ${n} volume${n === 1 ? '' : 's'}; delete them first`, { class: row.name, volumeCount: n });
      }
      await this.repos.classes.delete(trx, row.id);
      await this.journal(trx, actor, row.id, row.name, 'delete', `storage class ${row.name} deleted`, {});
    });
    await this.engine.recorded('class.delete');
  }

  /** The id of the class an earlier class.create with this key created, if it still exists (classes are journaled under the default tenant). */
  private async createdBy(key: string | undefined): Promise<string | undefined> {
    if (key === undefined) return undefined;
    const op = await this.repos.operations.findByIdempotencyKey(this.store.db, DEFAULT_TENANT_ID, key);
    if (op?.kind !== 'class.create' || op.target_type !== 'class') return undefined;
    return (await this.repos.classes.findById(this.store.db, op.target_id))?.id;
  }

  /** Only a create carries the request's key: the journal holds one operation per key, and that is the one a retry looks for. */
  private async journal(trx: Executor, actor: string, id: string, name: string, action: 'create' | 'update' | 'delete', message: string, input: Record<string, unknown>, idempotencyKey?: string): Promise<void> {
    await this.repos.events.append(trx, { tenantId: DEFAULT_TENANT_ID, actor, resourceType: 'class', resourceId: id, resourceName: name, action, message });
    await this.engine.record(trx, { kind: `class.${action}`, tenantId: DEFAULT_TENANT_ID, targetType: 'class', targetId: id, input, actor, idempotencyKey: idempotencyKey ?? null }, { classId: id });
  }
}

/** The class a request naming none gets must be one every tenant may use. */
function assertDefaultShared(isDefault: boolean, tenants: readonly string[] | null): void {
  if (isDefault && tenants !== null) {
    throw new StowageError('VALIDATION_FAILED', 'the default class is used by every tenant that names no class, so it cannot be restricted to some; restrict another class, or make another one the default first', {});
  }
}

function validateConstraints(c: { zone?: string | undefined; requiredTags?: readonly string[] | undefined; forbiddenTags?: readonly string[] | undefined; requiredCapabilities?: readonly string[] | undefined }): void {
  if (c.zone) assertValidName(c.zone, 'zone');
  assertValidTags(c.requiredTags ?? []);
  assertValidTags(c.forbiddenTags ?? []);
  const both = (c.requiredTags ?? []).filter((t) => (c.forbiddenTags ?? []).includes(t));
  if (both.length > 0) {
    throw new StowageError('VALIDATION_FAILED', `tag${both.length > 1 ? 's' : ''} ${both.join(', ')} cannot be both required and forbidden`, { tags: both });
  }
  const unknown = (c.requiredCapabilities ?? []).filter((x) => !(CAPABILITIES as readonly string[]).includes(x));
  if (unknown.length > 0) {
    throw new StowageError('VALIDATION_FAILED', `unknown capabilit${unknown.length > 1 ? 'ies' : 'y'} ${unknown.join(', ')}; known: ${CAPABILITIES.join(', ')}`, { capabilities: unknown });
  }
}

function toConstraints(r: ClassRow): ClassConstraints {
  return {
    id: r.id, name: r.name, kind: r.kind, zone: r.zone,
    requiredTags: readJson<string[]>(r.required_tags, []), forbiddenTags: readJson<string[]>(r.forbidden_tags, []),
    requiredCapabilities: readJson<string[]>(r.required_capabilities, []), policy: r.policy as PlacementPolicy, offload: r.offload !== 0,
  };
}

/** Maps a row to the API model. */
export function toStorageClass(r: ClassRow, volumeCount: number): StorageClass {
  const c = toConstraints(r);
  return {
    id: r.id, name: r.name, description: r.description, kind: c.kind, zone: c.zone, requiredTags: [...c.requiredTags],
    forbiddenTags: [...c.forbiddenTags], requiredCapabilities: [...c.requiredCapabilities], policy: c.policy,
    isDefault: r.is_default === 1, offload: c.offload, volumeCount, createdAt: r.created_at, updatedAt: r.updated_at,
  };
}
