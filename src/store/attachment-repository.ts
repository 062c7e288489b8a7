import type { Attachment } from '../core/schemas/attachment-schema.js';
import type { Migration } from '../core/schemas/migration-schema.js';
import type { VolumeId } from '../core/ids.js';
import type { AttachmentRow, MigrationRow } from './schema.js';
import type { Executor } from './store.js';
import { keysetPage, type PageRequest, type RowPage } from './keyset-page.js';
import { LIVE_ATTACHMENT_STATES, OPEN_MIGRATION_STATES, WANTED_ATTACHMENT_STATES, type AttachmentState, type GrantState } from '../core/states.js';


/** Attachments and live migrations. */
export class AttachmentRepository {
  async insert(db: Executor, row: AttachmentRow): Promise<void> {
    await db.insertInto('attachments').values(row).execute();
  }

  async findById(db: Executor, id: string): Promise<AttachmentRow | undefined> {
    return db.selectFrom('attachments').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async findLive(db: Executor, volumeId: VolumeId, hostId: string, instance: string): Promise<AttachmentRow | undefined> {
    return db.selectFrom('attachments').selectAll().where('volume_id', '=', volumeId).where('host_id', '=', hostId).where('instance', '=', instance)
      .where('state', 'in', [...LIVE_ATTACHMENT_STATES]).executeTakeFirst();
  }

  /** The newest attachment that made (or shares) a grant. */
  async findLatestForGrant(db: Executor, grantId: string): Promise<AttachmentRow | undefined> {
    return db.selectFrom('attachments').selectAll().where('grant_id', '=', grantId).orderBy('created_at', 'desc').orderBy('id', 'desc').executeTakeFirst();
  }

  async listLiveForVolume(db: Executor, volumeId: VolumeId): Promise<AttachmentRow[]> {
    return db.selectFrom('attachments').selectAll().where('volume_id', '=', volumeId).where('state', 'in', [...LIVE_ATTACHMENT_STATES]).execute();
  }

  /** A tenant's live attachments, oldest first. */
  async listLiveOfTenant(db: Executor, tenantId: string): Promise<AttachmentRow[]> {
    return db.selectFrom('attachments').selectAll().where('tenant_id', '=', tenantId).where('state', 'in', [...LIVE_ATTACHMENT_STATES]).orderBy('created_at').orderBy('id').execute();
  }

  async listLiveForHost(db: Executor, hostId: string): Promise<AttachmentRow[]> {
    return db.selectFrom('attachments').selectAll().where('host_id', '=', hostId).where('state', 'in', [...LIVE_ATTACHMENT_STATES]).execute();
  }

  async listWantedForHost(db: Executor, hostId: string): Promise<AttachmentRow[]> {
    return db.selectFrom('attachments').selectAll().where('host_id', '=', hostId).where('state', 'in', [...WANTED_ATTACHMENT_STATES]).execute();
  }

  async listForHostInstance(db: Executor, hostId: string, instance: string, states: readonly AttachmentState[]): Promise<AttachmentRow[]> {
    return db.selectFrom('attachments').selectAll().where('host_id', '=', hostId).where('instance', '=', instance).where('state', 'in', [...states]).execute();
  }

  /** One page of a tenant's attachments (filtered), oldest first. */
  async page(db: Executor, tenantId: string | null, filter: { volumeId?: VolumeId; hostId?: string; includeGone?: boolean }, page: PageRequest): Promise<RowPage<AttachmentRow>> {
    let q = db.selectFrom('attachments').selectAll();
    if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
    if (!filter.includeGone) q = q.where('state', '<>', 'gone');
    if (filter.volumeId) q = q.where('volume_id', '=', filter.volumeId);
    if (filter.hostId) q = q.where('host_id', '=', filter.hostId);
    return keysetPage(q, 'created_at', page);
  }

  async update(db: Executor, id: string, patch: Partial<Omit<AttachmentRow, 'id'>>): Promise<void> {
    await db.updateTable('attachments').set(patch).where('id', '=', id).execute();
  }

  async insertMigration(db: Executor, row: MigrationRow): Promise<void> {
    await db.insertInto('migrations').values(row).execute();
  }

  /** A host's attachments that ended `gone` with this reason (those fencing cut, for evacuation). */
  async listGoneForHost(db: Executor, hostId: string, reason: string): Promise<AttachmentRow[]> {
    return db.selectFrom('attachments').selectAll().where('host_id', '=', hostId).where('state', '=', 'gone').where('state_reason', '=', reason).execute();
  }

  /** State of each live attachment of a host with the state of its grant, in id order (what its agent should have connected). */
  async listLiveWithGrantStateForHost(db: Executor, hostId: string): Promise<{ id: string; state: AttachmentState; grant_state: GrantState | null }[]> {
    return db.selectFrom('attachments').leftJoin('grants', 'grants.id', 'attachments.grant_id')
      .select(['attachments.id', 'attachments.state', 'grants.state as grant_state']).where('attachments.host_id', '=', hostId)
      .where('attachments.state', 'in', [...LIVE_ATTACHMENT_STATES]).orderBy('attachments.id').execute();
  }

  async findMigration(db: Executor, id: string): Promise<MigrationRow | undefined> {
    return db.selectFrom('migrations').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async findOpenMigration(db: Executor, instance: string, fromHostId: string, toHostId: string): Promise<MigrationRow | undefined> {
    return db.selectFrom('migrations').selectAll().where('instance', '=', instance).where('from_host_id', '=', fromHostId).where('to_host_id', '=', toHostId)
      .where('state', 'in', [...OPEN_MIGRATION_STATES]).orderBy('created_at', 'desc').executeTakeFirst();
  }

  /** One page of a tenant's migrations, newest first. */
  async pageMigrations(db: Executor, tenantId: string | null, page: PageRequest): Promise<RowPage<MigrationRow>> {
    const q = db.selectFrom('migrations').selectAll();
    return keysetPage(tenantId === null ? q : q.where('tenant_id', '=', tenantId), 'created_at', page, true);
  }

  async updateMigration(db: Executor, id: string, patch: Partial<Omit<MigrationRow, 'id'>>): Promise<void> {
    await db.updateTable('migrations').set(patch).where('id', '=', id).execute();
  }
}

export function toAttachment(r: AttachmentRow, volumeName: string, hostName: string): Attachment {
  return {
    id: r.id, tenantId: r.tenant_id, volumeId: r.volume_id, volumeName, hostId: r.host_id, hostName, instance: r.instance, mode: r.mode,
    state: r.state, stateReason: r.state_reason, deviceId: r.device_id, migrationId: r.migration_id,
    reportedAt: r.reported_at, createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

export function toMigration(r: MigrationRow, fromHost: string, toHost: string): Migration {
  return {
    id: r.id, tenantId: r.tenant_id, instance: r.instance, fromHost, toHost, state: r.state, stateReason: r.state_reason,
    createdAt: r.created_at, updatedAt: r.updated_at,
  };
}
