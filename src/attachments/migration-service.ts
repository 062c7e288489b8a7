import { StowageError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Migration } from '../core/schemas/migration-schema.js';
import type { Operation } from '../core/schemas/operation-schema.js';
import type { PageOf } from '../core/models.js';
import { assertValidName } from '../core/names.js';
import type { HostService } from '../hosts/host-service.js';
import type { OperationEngine } from '../operations/engine.js';
import type { StepContext } from '../operations/handler.js';
import { toMigration } from '../store/attachment-repository.js';
import { MIGRATION_MACHINE, type MigrationState } from '../core/states.js';
import { transition } from '../store/transition.js';
import { nowIso } from '../store/json.js';
import { toOperation } from '../store/operation-repository.js';
import type { PageRequest } from '../store/keyset-page.js';
import type { AttachmentRow, MigrationRow } from '../store/schema.js';
import type { Store } from '../store/store.js';
import type { RequestContext } from '../volumes/volume-service.js';
import type { AttachmentService } from './attachment-service.js';
import type { Repositories } from '../store/repositories.js';


/**
 * Live migration as dual-grant, switch, revoke: `start` grants and connects every volume of the
 * instance on the destination (into the VM started there with -incoming) while the source keeps
 * its access; the compute layer moves the VM; `complete` disconnects and revokes the source;
 * `abort` undoes the destination side. Each phase is a durable operation.
 */
export class MigrationService {
  constructor(private readonly store: Store, private readonly repos: Repositories, private readonly engine: OperationEngine, private readonly hostService: HostService, private readonly attachmentService: AttachmentService) {}

  async get(id: string, tenantId: string): Promise<Migration> {
    const m = await this.repos.attachments.findMigration(this.store.db, id);
    if (m?.tenant_id !== tenantId) throw new StowageError('NOT_FOUND', `migration ${id} does not exist`, {});
    return this.present(m);
  }

  /** One page of a tenant's migrations, newest first. */
  async list(tenantId: string | null, page: PageRequest): Promise<PageOf<Migration>> {
    const { rows, nextCursor } = await this.repos.attachments.pageMigrations(this.store.db, tenantId, page);
    return { items: await Promise.all(rows.map((m) => this.present(m))), nextCursor };
  }

  async start(instance: string, fromRef: string, toRef: string, ctx: RequestContext): Promise<{ migration: Migration; operation: Operation }> {
    assertValidName(instance, 'instance name');
    const from = await this.hostService.usableBy(fromRef, ctx.tenantId);
    const to = await this.hostService.usableBy(toRef, ctx.tenantId);
    if (from.id === to.id) throw new StowageError('VALIDATION_FAILED', 'source and destination are the same host', {});
    if (to.state === 'fenced') throw new StowageError('INVALID_STATE', `destination ${to.name} is fenced`, {});
    const source = (await this.repos.attachments.listForHostInstance(this.store.db, from.id, instance, ['attached']));
    if (source.length === 0) throw new StowageError('ATTACHMENT_NOT_FOUND', `instance ${instance} on ${from.name} has no attached volumes to migrate`, {});
    const existing = await this.repos.attachments.findOpenMigration(this.store.db, instance, from.id, to.id);
    if (existing) {
      const op = await this.repos.operations.findActiveForTarget(this.store.db, existing.id);
      if (op) return { migration: await this.present(existing), operation: toOperation(op) };
      throw new StowageError('INVALID_STATE', `migration ${existing.id} of ${instance} is already ${existing.state}; complete or abort it`, { migrationId: existing.id });
    }
    const id = newId('migration');
    const op = await this.store.transaction(async (trx) => {
      const at = nowIso();
      const m: MigrationRow = { id, tenant_id: ctx.tenantId, instance, from_host_id: from.id, to_host_id: to.id, state: 'starting', state_reason: null, created_at: at, updated_at: at };
      await this.repos.attachments.insertMigration(trx, m);
      const row = await this.engine.enqueue(trx, { kind: 'migration.start', tenantId: ctx.tenantId, targetType: 'migration', targetId: id, actor: ctx.actor, idempotencyKey: ctx.idempotencyKey ?? null, input: {} });
      await this.repos.events.append(trx, { tenantId: ctx.tenantId, actor: ctx.actor, resourceType: 'migration', resourceId: id, resourceName: instance, action: 'start', from: null, to: 'starting', operationId: row.id, message: `migrating ${instance}'s storage from ${from.name} to ${to.name}` });
      return row;
    });
    this.engine.wake();
    return { migration: await this.get(id, ctx.tenantId), operation: toOperation(op) };
  }

  async complete(id: string, ctx: RequestContext): Promise<{ migration: Migration; operation: Operation }> {
    return this.finish(id, 'migration.complete', 'completing', MIGRATION_MACHINE.sourcesOf('completing'), ctx);
  }

  async abort(id: string, ctx: RequestContext): Promise<{ migration: Migration; operation: Operation }> {
    return this.finish(id, 'migration.abort', 'aborting', MIGRATION_MACHINE.sourcesOf('aborting'), ctx);
  }

  /** Finds the open migration of an instance between two hosts (for the CLI's --instance/--from/--to form). */
  async findOpen(instance: string, fromRef: string, toRef: string, tenantId: string): Promise<string> {
    const from = await this.hostService.resolve(fromRef);
    const to = await this.hostService.resolve(toRef);
    const m = await this.repos.attachments.findOpenMigration(this.store.db, instance, from.id, to.id);
    if (m?.tenant_id !== tenantId) throw new StowageError('NOT_FOUND', `no open migration of ${instance} from ${from.name} to ${to.name}`, {});
    return m.id;
  }

  private async finish(id: string, kind: 'migration.complete' | 'migration.abort', to: MigrationState, from: readonly MigrationState[], ctx: RequestContext): Promise<{ migration: Migration; operation: Operation }> {
    const op = await this.store.transaction(async (trx) => {
      const m = await this.repos.attachments.findMigration(trx, id);
      if (m?.tenant_id !== ctx.tenantId) throw new StowageError('NOT_FOUND', `migration ${id} does not exist`, {});
      const active = await this.repos.operations.findActiveForTarget(trx, m.id);
      if (active?.kind === kind) return active;
      if (active) throw new StowageError('INVALID_STATE', `migration ${m.id} is busy with ${active.kind} (${active.id})`, { operationId: active.id });
      if (!from.includes(m.state)) throw new StowageError('INVALID_STATE', `migration ${m.id} is ${m.state}; it must be ${from.join(' or ')}`, { state: m.state });
      const row = await this.engine.enqueue(trx, { kind, tenantId: ctx.tenantId, targetType: 'migration', targetId: m.id, actor: ctx.actor, idempotencyKey: ctx.idempotencyKey ?? null, input: {} });
      await transition(trx, 'migration', { id: m.id, tenantId: ctx.tenantId, to, event: { actor: ctx.actor, action: to, resourceName: m.instance, operationId: row.id, message: `migration of ${m.instance} ${to}` } });
      return row;
    });
    this.engine.wake();
    return { migration: await this.get(id, ctx.tenantId), operation: toOperation(op) };
  }

  private async present(m: MigrationRow): Promise<Migration> {
    const [f, t] = await Promise.all([this.repos.hosts.findById(this.store.db, m.from_host_id), this.repos.hosts.findById(this.store.db, m.to_host_id)]);
    return toMigration(m, f?.name ?? m.from_host_id, t?.name ?? m.to_host_id);
  }

  /** Creates (idempotently) the destination attachments of a migration. */
  async ensureDestination(m: MigrationRow, ctx: StepContext<object>): Promise<AttachmentRow[]> {
    const src = await this.repos.attachments.listForHostInstance(this.store.db, m.from_host_id, m.instance, ['attached']);
    const out: AttachmentRow[] = [];
    for (const s of src) {
      const existing = await this.repos.attachments.findLive(this.store.db, s.volume_id, m.to_host_id, m.instance);
      if (existing) { out.push(existing); continue; }
      const at = nowIso();
      const row: AttachmentRow = {
        id: newId('attachment'), tenant_id: m.tenant_id, volume_id: s.volume_id, host_id: m.to_host_id, instance: m.instance, mode: s.mode,
        state: 'granting', state_reason: null, grant_id: null, device_id: null, migration_id: m.id, reported_at: null, created_at: at, updated_at: at,
      };
      await ctx.write(async (trx) => {
        await this.repos.attachments.insert(trx, row);
        await this.repos.events.append(trx, { tenantId: m.tenant_id, actor: ctx.operation.actor, resourceType: 'attachment', resourceId: row.id, resourceName: m.instance, action: 'attach', from: null, to: 'granting', operationId: ctx.operation.id, message: `migration ${m.id}: attaching on the destination` });
      });
      out.push(row);
    }
    return out;
  }
}

export type { AttachmentService };
