import { StowageError } from '../core/errors.js';
import { formatSize } from '../core/sizes.js';
import type { QuotaKind, QuotaLine, QuotaReport, SetQuotaInput } from '../core/schemas/quota-schema.js';
import type { ClassService } from '../classes/class-service.js';
import type { TenantService } from '../tenants/tenant-service.js';
import { lockPlacement } from '../store/placement-lock.js';
import { TENANT_WIDE, type QuotaUsage } from '../store/quota-repository.js';
import type { Repositories } from '../store/repositories.js';
import type { QuotaRow } from '../store/schema.js';
import type { Executor, Store } from '../store/store.js';

/** What a submit is about to add to a tenant (and to the class of the volume concerned). */
export interface QuotaRequest {
  readonly tenantId: string;
  /** The class of the volume created, grown or snapshotted; null: none (only tenant-wide limits apply). */
  readonly classId: string | null;
  readonly addVolumes?: number;
  readonly addBytes?: number;
  readonly addSnapshots?: number;
}

const LIMIT_OF = { volumes: 'max_volumes', bytes: 'max_bytes', snapshots: 'max_snapshots' } as const satisfies Record<QuotaKind, keyof QuotaRow>;
const FLAG_OF = { volumes: '--volumes', bytes: '--size', snapshots: '--snapshots' } as const satisfies Record<QuotaKind, string>;
const show = (kind: QuotaKind, n: number): string => (kind === 'bytes' ? formatSize(n) : String(n));

/**
 * Throws QUOTA_EXCEEDED when the request would take the tenant (or its class) past a limit. Takes the
 * placement lock first (re-entrant within a transaction), so it runs after the same lock capacity
 * placement takes: concurrent submits, in this process or another replica, serialize on it and each
 * sees the others' committed rows. Call it inside the submit's transaction, before its rows are inserted.
 */
export async function checkQuota(trx: Executor, dialect: Store['dialect'], repos: Pick<Repositories, 'quotas' | 'classes'>, req: QuotaRequest): Promise<void> {
  await lockPlacement(trx, dialect);
  const scopes = [TENANT_WIDE, ...(req.classId ? [req.classId] : [])];
  for (const classId of scopes) {
    const row = await repos.quotas.find(trx, req.tenantId, classId);
    if (!row) continue;
    const add: Record<QuotaKind, number> = { volumes: req.addVolumes ?? 0, bytes: req.addBytes ?? 0, snapshots: req.addSnapshots ?? 0 };
    let used: QuotaUsage | null = null;
    for (const kind of ['volumes', 'bytes', 'snapshots'] as const) {
      const limit = row[LIMIT_OF[kind]];
      if (limit === null || add[kind] <= 0) continue;
      used ??= await repos.quotas.usage(trx, req.tenantId, classId);
      if (used[kind] + add[kind] <= Number(limit)) continue;
      const scope = classId === TENANT_WIDE ? 'tenant' : `class ${(await repos.classes.findById(trx, classId))?.name ?? classId}`;
      const tenantFlag = `--tenant ${req.tenantId}${classId === TENANT_WIDE ? '' : ` --class ${scope.slice('class '.length)}`}`;
      throw new StowageError('QUOTA_EXCEEDED', `quota exceeded: ${scope} may have ${show(kind, Number(limit))} ${kind}, uses ${show(kind, used[kind])}, this needs ${show(kind, add[kind])} more; delete some, or ask an admin to raise it (stowage quota set ${tenantFlag} ${FLAG_OF[kind]} …)`, {
        quota: kind, scope, limit: Number(limit), used: used[kind], requested: add[kind],
      });
    }
  }
}

/** Shows and sets quotas: limits against usage, tenant-wide and per class. */
export class QuotaService {
  constructor(private readonly store: Store, private readonly repos: Repositories, private readonly tenants: TenantService, private readonly classes: ClassService) {}

  /** A tenant's quota lines (by id): every kind tenant-wide, and per class that has a quota. */
  async report(tenantId: string): Promise<QuotaReport> {
    const db = this.store.db;
    const tenant = await this.repos.tenants.findTenantById(db, tenantId);
    const rows = await this.repos.quotas.listForTenant(db, tenantId);
    const scopes = [TENANT_WIDE, ...rows.map((r) => r.class_id).filter((c) => c !== TENANT_WIDE)];
    const lines: QuotaLine[] = [];
    for (const classId of scopes) {
      const row = rows.find((r) => r.class_id === classId);
      const used = await this.repos.quotas.usage(db, tenantId, classId);
      const scope = classId === TENANT_WIDE ? 'tenant' : `class ${(await this.repos.classes.findById(db, classId))?.name ?? classId}`;
      for (const kind of ['volumes', 'bytes', 'snapshots'] as const) {
        const raw = row ? row[LIMIT_OF[kind]] : null;
        const limit = raw === null ? null : Number(raw);
        lines.push({ quota: kind, scope, used: used[kind], limit, free: limit === null ? null : Math.max(0, limit - used[kind]) });
      }
    }
    return { tenant: tenant?.name ?? tenantId, lines };
  }

  /** A tenant's quotas by id or name (TENANT_NOT_FOUND otherwise). */
  async show(tenantRef: string): Promise<QuotaReport> {
    return this.report((await this.tenants.resolveTenant(tenantRef)).id);
  }

  /** Sets limits of a tenant or of one class within it (CLASS_NOT_FOUND, TENANT_NOT_FOUND); a lower limit than usage is allowed and only stops new growth. */
  async set(tenantRef: string, input: SetQuotaInput): Promise<QuotaReport> {
    const tenant = await this.tenants.resolveTenant(tenantRef);
    const classId = input.class ? (await this.classes.resolve(input.class)).id : TENANT_WIDE;
    await this.store.transaction(async (trx) => {
      await this.repos.quotas.upsert(trx, tenant.id, classId, {
        ...(input.maxVolumes !== undefined ? { maxVolumes: input.maxVolumes } : {}),
        ...(input.maxBytes !== undefined ? { maxBytes: input.maxBytes } : {}),
        ...(input.maxSnapshots !== undefined ? { maxSnapshots: input.maxSnapshots } : {}),
      });
    });
    return this.report(tenant.id);
  }
}
