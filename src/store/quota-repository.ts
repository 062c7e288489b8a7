import { nowIso } from './json.js';
import type { QuotaRow } from './schema.js';
import type { Executor } from './store.js';

/** The class_id of a tenant-wide quota row (not NULL, so the primary key works on both dialects). */
export const TENANT_WIDE = '';

/** New limits for one scope; undefined leaves a limit as it is, null makes it unlimited. */
export interface QuotaPatch {
  readonly maxVolumes?: number | null;
  readonly maxBytes?: number | null;
  readonly maxSnapshots?: number | null;
}

/** What a tenant (or one class of it) holds right now. */
export interface QuotaUsage {
  volumes: number;
  bytes: number;
  snapshots: number;
}

/** Quota rows and the usage they are checked against. */
export class QuotaRepository {
  /** Every quota row of a tenant (tenant-wide first). */
  async listForTenant(db: Executor, tenantId: string): Promise<QuotaRow[]> {
    return db.selectFrom('quotas').selectAll().where('tenant_id', '=', tenantId).orderBy('class_id').execute();
  }

  async find(db: Executor, tenantId: string, classId: string): Promise<QuotaRow | undefined> {
    return db.selectFrom('quotas').selectAll().where('tenant_id', '=', tenantId).where('class_id', '=', classId).executeTakeFirst();
  }

  /** Writes the given limits of one scope, inserting the row when it is new. */
  async upsert(db: Executor, tenantId: string, classId: string, patch: QuotaPatch): Promise<void> {
    const existing = await this.find(db, tenantId, classId);
    const at = nowIso();
    const set = {
      ...(patch.maxVolumes !== undefined ? { max_volumes: patch.maxVolumes } : {}),
      ...(patch.maxBytes !== undefined ? { max_bytes: patch.maxBytes } : {}),
      ...(patch.maxSnapshots !== undefined ? { max_snapshots: patch.maxSnapshots } : {}),
      updated_at: at,
    };
    if (existing) {
      await db.updateTable('quotas').set(set).where('tenant_id', '=', tenantId).where('class_id', '=', classId).execute();
    } else {
      await db.insertInto('quotas').values({ tenant_id: tenantId, class_id: classId, max_volumes: null, max_bytes: null, max_snapshots: null, ...set }).execute();
    }
  }

  /**
   * Usage of a tenant, or of one class within it (`classId`; '' = the whole tenant). The counting rule:
   * - volumes: the tenant's volumes not `deleted` (creating, deleting and error ones still hold a name and space);
   * - bytes: their size_bytes, plus held claims of running `volume.resize` operations (the grow's delta,
   *   which size_bytes does not show until the grow lands). A create's held claim is NOT added: the
   *   `creating` row inserted in the same transaction already carries its full size;
   * - snapshots: the tenant's snapshots not `deleted` (of volumes of that class, for a class).
   */
  async usage(db: Executor, tenantId: string, classId: string): Promise<QuotaUsage> {
    let vq = db.selectFrom('volumes')
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.sum<number>('size_bytes').as('bytes')])
      .where('tenant_id', '=', tenantId).where('state', '<>', 'deleted');
    if (classId !== TENANT_WIDE) vq = vq.where('class_id', '=', classId);
    let gq = db.selectFrom('claims')
      .innerJoin('operations', 'operations.id', 'claims.operation_id')
      .innerJoin('volumes', 'volumes.id', 'operations.target_id')
      .select((eb) => eb.fn.sum<number>('claims.bytes').as('bytes'))
      .where('claims.state', '=', 'held').where('claims.resource_type', '=', 'volume')
      .where('operations.kind', '=', 'volume.resize').where('volumes.tenant_id', '=', tenantId);
    if (classId !== TENANT_WIDE) gq = gq.where('volumes.class_id', '=', classId);
    let sq = db.selectFrom('snapshots').innerJoin('volumes', 'volumes.id', 'snapshots.volume_id')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('snapshots.tenant_id', '=', tenantId).where('snapshots.state', '<>', 'deleted');
    if (classId !== TENANT_WIDE) sq = sq.where('volumes.class_id', '=', classId);
    const [v, g, s] = await Promise.all([vq.executeTakeFirst(), gq.executeTakeFirst(), sq.executeTakeFirst()]);
    return { volumes: Number(v?.n ?? 0), bytes: Number(v?.bytes ?? 0) + Number(g?.bytes ?? 0), snapshots: Number(s?.n ?? 0) };
  }
}
