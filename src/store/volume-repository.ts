import type { PageOf } from '../core/models.js';
import type { PlacementSummary } from '../core/schemas/placement-schema.js';
import type { Volume } from '../core/schemas/volume-schema.js';
import { ACTIVE_OPERATION_STATES, TRANSITIONAL_VOLUME_STATES, type VolumeState } from '../core/states.js';
import type { BackendId, VolumeId } from '../core/ids.js';
import type { DriverHandle } from '../core/models.js';
import { readJson } from './json.js';
import { keysetPage, type RowPage } from './keyset-page.js';
import type { NewVolumeRow, VolumeRow } from './schema.js';
import type { Executor } from './store.js';

/** Filters for volume lists. */
export interface VolumeQuery {
  /** null: every tenant's (an admin's --all-tenants). */
  readonly tenantId: string | null;
  readonly backendId?: BackendId;
  readonly state?: VolumeState;
  readonly includeDeleted?: boolean;
  readonly limit: number;
  /** The previous page's nextCursor. */
  readonly cursor?: string;
}

/** Volumes. */
export class VolumeRepository {
  async insert(db: Executor, row: NewVolumeRow): Promise<void> {
    await db.insertInto('volumes').values(row).execute();
  }

  async findById(db: Executor, id: VolumeId): Promise<VolumeRow | undefined> {
    return db.selectFrom('volumes').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** The live (not deleted) volume with this name in the tenant. */
  async findLiveByName(db: Executor, tenantId: string, name: string): Promise<VolumeRow | undefined> {
    return db.selectFrom('volumes').selectAll()
      .where('tenant_id', '=', tenantId).where('name', '=', name).where('state', '<>', 'deleted')
      .executeTakeFirst();
  }

  /** One page by (name, id): names are unique only within a tenant, and a list of every tenant's has the same name twice. */
  async list(db: Executor, q: VolumeQuery): Promise<RowPage<VolumeRow>> {
    let query = db.selectFrom('volumes').selectAll();
    if (q.tenantId !== null) query = query.where('tenant_id', '=', q.tenantId);
    if (!q.includeDeleted) query = query.where('state', '<>', 'deleted');
    if (q.backendId) query = query.where('backend_id', '=', q.backendId);
    if (q.state) query = query.where('state', '=', q.state);
    return keysetPage(query, 'name', { limit: q.limit, cursor: q.cursor });
  }

  /** Volumes in the given states on a backend (for reconcilers). */
  async listByBackend(db: Executor, backendId: BackendId, states: readonly VolumeState[]): Promise<VolumeRow[]> {
    return db.selectFrom('volumes').selectAll().where('backend_id', '=', backendId).where('state', 'in', [...states]).execute();
  }

  /** A tenant's volumes not deleted yet, in any other state (what a cascading tenant delete destroys). */
  async listUndeletedOfTenant(db: Executor, tenantId: string): Promise<VolumeRow[]> {
    return db.selectFrom('volumes').selectAll().where('tenant_id', '=', tenantId).where('state', '<>', 'deleted').orderBy('created_at').orderBy('id').execute();
  }

  async listInStates(db: Executor, states: readonly VolumeState[]): Promise<VolumeRow[]> {
    return db.selectFrom('volumes').selectAll().where('state', 'in', [...states]).execute();
  }

  /**
   * Volumes in a transitional state that no unfinished operation targets (neither the volume nor its
   * tenant, which a cascading delete targets): left behind by a bug or a manual edit, for the stale-state sweeper. Id, name, state and tenant only.
   */
  async listTransitionalWithoutOperation(db: Executor): Promise<Pick<VolumeRow, 'id' | 'name' | 'state' | 'tenant_id'>[]> {
    return db.selectFrom('volumes').select(['id', 'name', 'state', 'tenant_id'])
      .where('state', 'in', [...TRANSITIONAL_VOLUME_STATES])
      .where((eb) => eb.not(eb.exists(
        eb.selectFrom('operations').select('operations.id')
          .whereRef('operations.target_id', '=', 'volumes.id').where('operations.state', 'in', [...ACTIVE_OPERATION_STATES]),
      )))
      // A cascading tenant delete owns every volume of its tenant (its target is the tenant).
      .where((eb) => eb.not(eb.exists(
        eb.selectFrom('operations').select('operations.id')
          .whereRef('operations.target_id', '=', 'volumes.tenant_id').where('operations.state', 'in', [...ACTIVE_OPERATION_STATES]),
      )))
      .execute();
  }

  /** Which of these volume ids name a volume that exists and is not deleted. */
  async listExistingIds(db: Executor, ids: readonly VolumeId[]): Promise<VolumeId[]> {
    return (await db.selectFrom('volumes').select('id').where('id', 'in', [...ids]).where('state', '<>', 'deleted').execute()).map((r) => r.id);
  }

  /** Which of these volume ids the store knows in any state (a deleted one too): the rest are no volume of ours. */
  async listKnownIds(db: Executor, ids: readonly VolumeId[]): Promise<VolumeId[]> {
    if (ids.length === 0) return [];
    return (await db.selectFrom('volumes').select('id').where('id', 'in', [...ids]).execute()).map((r) => r.id);
  }

  /** Lets go of a backend's deleted volumes (their rows stay, for history) so the backend row can be deleted. */
  async releaseDeletedFromBackend(db: Executor, backendId: BackendId): Promise<void> {
    await db.updateTable('volumes').set({ backend_id: null }).where('backend_id', '=', backendId).where('state', '=', 'deleted').execute();
  }

  async update(db: Executor, id: VolumeId, patch: Partial<Omit<NewVolumeRow, 'id'>>): Promise<void> {
    await db.updateTable('volumes').set(patch).where('id', '=', id).execute();
  }
}

/** Maps a row to the API model. */
export function toVolume(r: VolumeRow, backendName: string | null): Volume {
  return {
    id: r.id,
    name: r.name,
    tenantId: r.tenant_id,
    state: r.state,
    stateReason: r.state_reason,
    sizeBytes: Number(r.size_bytes),
    format: r.format,
    backendId: r.backend_id,
    backendName,
    placement: readJson<PlacementSummary | null>(r.placement, null),
    multiattach: r.multiattach === 1,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** The driver handle stored with a volume (null until the driver created it). */
export function volumeHandle(r: VolumeRow): DriverHandle | null {
  return readJson<DriverHandle | null>(r.driver_handle, null);
}

export type { PageOf };
