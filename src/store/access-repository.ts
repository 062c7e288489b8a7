import type { ConnectionInfoModel, Grant } from '../core/schemas/access-schema.js';
import type { Host } from '../core/schemas/host-schema.js';
import type { Snapshot } from '../core/schemas/snapshot-schema.js';
import type { VolumeId } from '../core/ids.js';
import { readJson } from './json.js';
import type { GrantRow, HostRow, SnapshotRow } from './schema.js';
import type { Executor } from './store.js';
import { keysetPage, type PageRequest, type RowPage } from './keyset-page.js';
import { DESIRED_GRANT_STATES, LIVE_GRANT_STATES } from '../core/states.js';


/** Hosts. */
export class HostRepository {
  async insert(db: Executor, row: HostRow): Promise<void> {
    await db.insertInto('hosts').values(row).execute();
  }

  async findById(db: Executor, id: string): Promise<HostRow | undefined> {
    return db.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async findByName(db: Executor, name: string): Promise<HostRow | undefined> {
    return db.selectFrom('hosts').selectAll().where('name', '=', name).executeTakeFirst();
  }

  async list(db: Executor): Promise<HostRow[]> {
    return db.selectFrom('hosts').selectAll().orderBy('name').execute();
  }

  /** One page of hosts by name. */
  async page(db: Executor, page: PageRequest): Promise<RowPage<HostRow>> {
    return keysetPage(db.selectFrom('hosts').selectAll(), 'name', page);
  }

  async update(db: Executor, id: string, patch: Partial<Omit<HostRow, 'id'>>): Promise<void> {
    await db.updateTable('hosts').set(patch).where('id', '=', id).execute();
  }

  async delete(db: Executor, id: string): Promise<void> {
    await db.deleteFrom('hosts').where('id', '=', id).execute();
  }
}

/** Grants: the desired backend-side access of hosts to volumes. */
export class GrantRepository {
  async insert(db: Executor, row: GrantRow): Promise<void> {
    await db.insertInto('grants').values(row).execute();
  }

  async findById(db: Executor, id: string): Promise<GrantRow | undefined> {
    return db.selectFrom('grants').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** The live (not revoked) grant of a host on a volume. */
  async findLive(db: Executor, volumeId: VolumeId, hostId: string): Promise<GrantRow | undefined> {
    return db.selectFrom('grants').selectAll().where('volume_id', '=', volumeId).where('host_id', '=', hostId).where('state', '<>', 'revoked').executeTakeFirst();
  }

  async listLiveForVolume(db: Executor, volumeId: VolumeId): Promise<GrantRow[]> {
    return db.selectFrom('grants').selectAll().where('volume_id', '=', volumeId).where('state', 'in', [...LIVE_GRANT_STATES]).orderBy('created_at').execute();
  }

  /** A tenant's live grants (not revoked yet, `error` included), oldest first. */
  async listLiveOfTenant(db: Executor, tenantId: string): Promise<GrantRow[]> {
    return db.selectFrom('grants').selectAll().where('tenant_id', '=', tenantId).where('state', 'in', [...LIVE_GRANT_STATES]).orderBy('created_at').orderBy('id').execute();
  }

  async listLiveForHost(db: Executor, hostId: string): Promise<GrantRow[]> {
    return db.selectFrom('grants').selectAll().where('host_id', '=', hostId).where('state', 'in', [...LIVE_GRANT_STATES]).execute();
  }

  /** Removes every grant row of a host, whatever its state (the host itself is being deleted). */
  async deleteAllForHost(db: Executor, hostId: string): Promise<void> {
    await db.deleteFrom('grants').where('host_id', '=', hostId).execute();
  }

  /** Grants of these volumes whose revoke failed (`error`), for the reconciler to finish; ids, volume and tenant only. */
  async listErroredForVolumes(db: Executor, volumeIds: readonly VolumeId[]): Promise<Pick<GrantRow, 'id' | 'volume_id' | 'tenant_id'>[]> {
    return db.selectFrom('grants').select(['id', 'volume_id', 'tenant_id']).where('state', '=', 'error')
      .where('volume_id', 'in', volumeIds.length > 0 ? [...volumeIds] : ['' as VolumeId]).execute();
  }

  /** Grants that should exist on the backend right now (granting or active), for reconcilers. */
  async listDesiredForVolumes(db: Executor, volumeIds: readonly VolumeId[]): Promise<GrantRow[]> {
    if (volumeIds.length === 0) return [];
    return db.selectFrom('grants').selectAll().where('volume_id', 'in', [...volumeIds]).where('state', 'in', [...DESIRED_GRANT_STATES]).execute();
  }

  async update(db: Executor, id: string, patch: Partial<Omit<GrantRow, 'id'>>): Promise<void> {
    await db.updateTable('grants').set(patch).where('id', '=', id).execute();
  }
}

/** Snapshots. */
export class SnapshotRepository {
  async insert(db: Executor, row: SnapshotRow): Promise<void> {
    await db.insertInto('snapshots').values(row).execute();
  }

  async findById(db: Executor, id: string): Promise<SnapshotRow | undefined> {
    return db.selectFrom('snapshots').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async findLiveByName(db: Executor, tenantId: string, name: string): Promise<SnapshotRow | undefined> {
    return db.selectFrom('snapshots').selectAll().where('tenant_id', '=', tenantId).where('name', '=', name).where('state', '<>', 'deleted').executeTakeFirst();
  }

  /** One page of a tenant's snapshots (of one volume if given), oldest first. */
  async page(db: Executor, tenantId: string | null, volumeId: VolumeId | undefined, page: PageRequest): Promise<RowPage<SnapshotRow>> {
    let q = db.selectFrom('snapshots').selectAll().where('state', '<>', 'deleted');
    if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
    if (volumeId) q = q.where('volume_id', '=', volumeId);
    return keysetPage(q, 'created_at', page);
  }

  /** A tenant's snapshots not deleted yet, in any other state. */
  async listUndeletedOfTenant(db: Executor, tenantId: string): Promise<SnapshotRow[]> {
    return db.selectFrom('snapshots').selectAll().where('tenant_id', '=', tenantId).where('state', '<>', 'deleted').orderBy('created_at').orderBy('id').execute();
  }

  async countLiveForVolume(db: Executor, volumeId: VolumeId): Promise<number> {
    const r = await db.selectFrom('snapshots').select((eb) => eb.fn.countAll<number>().as('n')).where('volume_id', '=', volumeId).where('state', '<>', 'deleted').executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async update(db: Executor, id: string, patch: Partial<Omit<SnapshotRow, 'id'>>): Promise<void> {
    await db.updateTable('snapshots').set(patch).where('id', '=', id).execute();
  }
}

export function toHost(r: HostRow): Host {
  return {
    id: r.id, name: r.name, initiatorName: r.initiator_name, addresses: readJson<string[]>(r.addresses, []), zone: r.zone,
    state: r.state, connectors: readJson<string[]>(r.connectors, []), instances: readJson<string[]>(r.instances, []),
    agentHeartbeatAt: r.agent_heartbeat_at, createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

/** A grant for display: never carries the CHAP secret. */
export function toGrant(r: GrantRow, volumeName: string, hostName: string): Grant {
  const connection = readJson<ConnectionInfoModel | null>(r.connection, null);
  return {
    id: r.id, volumeId: r.volume_id, volumeName, hostId: r.host_id, hostName, mode: r.mode, state: r.state,
    stateReason: r.state_reason, connection, createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

export function toSnapshot(r: SnapshotRow, volumeName: string | null): Snapshot {
  return {
    id: r.id, tenantId: r.tenant_id, name: r.name, volumeId: r.volume_id, volumeName, backendId: r.backend_id, state: r.state,
    stateReason: r.state_reason, sizeBytes: Number(r.size_bytes), method: r.method, createdAt: r.created_at, updatedAt: r.updated_at,
  };
}
