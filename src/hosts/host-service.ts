import { isIP } from 'node:net';
import { StowageError } from '../core/errors.js';
import { isId, newId } from '../core/ids.js';
import type { CreateHostInput, Host, UpdateHostInput } from '../core/schemas/host-schema.js';
import type { PageOf } from '../core/models.js';
import { assertValidInitiatorName, assertValidName } from '../core/names.js';
import type { HostIdentity } from '../drivers/sdk/types.js';
import type { OperationEngine } from '../operations/engine.js';
import { toHost } from '../store/access-repository.js';
import { isUniqueViolation, nowIso, readJson, writeJson } from '../store/json.js';
import type { PageRequest } from '../store/keyset-page.js';
import type { HostRow } from '../store/schema.js';
import type { Executor, Store } from '../store/store.js';
import type { Repositories } from '../store/repositories.js';
import { tenantNames, tenantsColumn, visibleTo } from '../tenants/visibility.js';

/** What an operator (or an agent) says about a host: a create, or an update with its name. */
export type HostInput = CreateHostInput | (UpdateHostInput & { readonly name: string });

/** The rules of hosts: identity used by grants (addresses, initiator name), zone, state. */
export class HostService {
  constructor(private readonly store: Store, private readonly repos: Repositories, private readonly engine: OperationEngine) {}

  /** Finds a host by id or name (one `usableBy` that tenant may use), or throws HOST_NOT_FOUND. */
  async resolve(ref: string, db: Executor = this.store.db, usableBy?: string): Promise<HostRow> {
    const row = isId('host', ref) ? await this.repos.hosts.findById(db, ref) : await this.repos.hosts.findByName(db, ref);
    if (!row || (usableBy !== undefined && !visibleTo(row.tenants, usableBy))) throw new StowageError('HOST_NOT_FOUND', `host "${ref}" does not exist; see \`stowage host list\``, { host: ref });
    return row;
  }

  /**
   * A host `tenantId` may attach to or grant access to: one restricted to other tenants is
   * HOST_NOT_FOUND, exactly as one that does not exist.
   */
  async usableBy(ref: string, tenantId: string, db: Executor = this.store.db): Promise<HostRow> {
    return this.resolve(ref, db, tenantId);
  }

  async get(ref: string): Promise<Host> {
    return this.present(await this.resolve(ref));
  }

  private async present(row: HostRow): Promise<Host> {
    return { ...toHost(row), tenants: await tenantNames(this.store.db, this.repos, row.tenants) };
  }

  /** One page of hosts by name. */
  async list(page: PageRequest): Promise<PageOf<Host>> {
    const { rows, nextCursor } = await this.repos.hosts.page(this.store.db, page);
    return { items: await Promise.all(rows.map((r) => this.present(r))), nextCursor };
  }

  /**
   * Registers a host. With an Idempotency-Key whose host.create already committed (the process died
   * before it answered), answers that host instead of NAME_TAKEN: the idempotency layer has already
   * checked that this is the same request.
   */
  async create(input: CreateHostInput, actor: string, tenantId: string, idempotencyKey?: string): Promise<Host> {
    validateHost(input);
    const first = await this.createdBy(tenantId, idempotencyKey);
    if (first) return this.present(first);
    const tenants = await tenantsColumn(this.store.db, this.repos, input.tenants ?? null);
    const at = nowIso();
    const row: HostRow = {
      id: newId('host'), tenant_id: tenantId, name: input.name, initiator_name: input.initiatorName ?? null,
      addresses: writeJson(input.addresses ?? []), zone: input.zone ?? '', state: 'unknown', connectors: '[]', instances: '[]',
      agent_heartbeat_at: null, created_at: at, updated_at: at, enroll_token_hash: null, enroll_expires_at: null, tenants,
    };
    await this.store.transaction(async (trx) => {
      try {
        await this.repos.hosts.insert(trx, row);
      } catch (err) {
        if (isUniqueViolation(err)) throw new StowageError('NAME_TAKEN', `a host named "${input.name}" already exists`, { name: input.name });
        throw err;
      }
      await this.repos.events.append(trx, { tenantId, actor, resourceType: 'host', resourceId: row.id, resourceName: row.name, action: 'create', from: null, to: row.state, message: `host ${row.name} registered` });
      await this.engine.record(trx, { kind: 'host.create', tenantId, targetType: 'host', targetId: row.id, input: { ...input }, actor, idempotencyKey: idempotencyKey ?? null }, {});
    });
    await this.engine.recorded('host.create');
    return this.present(row);
  }

  /** The host an earlier host.create with this key created (same tenant), if it still exists. */
  private async createdBy(tenantId: string, key: string | undefined): Promise<HostRow | undefined> {
    if (key === undefined) return undefined;
    const op = await this.repos.operations.findByIdempotencyKey(this.store.db, tenantId, key);
    if (op?.kind !== 'host.create' || op.target_type !== 'host') return undefined;
    return this.repos.hosts.findById(this.store.db, op.target_id);
  }

  async update(ref: string, patch: UpdateHostInput, actor: string): Promise<Host> {
    validateHost({ name: 'x', ...patch });
    const row = await this.resolve(ref);
    const tenants = patch.tenants === undefined ? undefined : await tenantsColumn(this.store.db, this.repos, patch.tenants);
    await this.store.transaction(async (trx) => {
      await this.repos.hosts.update(trx, row.id, {
        ...(tenants !== undefined ? { tenants } : {}),
        ...(patch.initiatorName !== undefined ? { initiator_name: patch.initiatorName } : {}),
        ...(patch.addresses !== undefined ? { addresses: writeJson(patch.addresses) } : {}),
        ...(patch.zone !== undefined ? { zone: patch.zone } : {}),
        updated_at: nowIso(),
      });
      await this.repos.events.append(trx, { tenantId: row.tenant_id, actor, resourceType: 'host', resourceId: row.id, resourceName: row.name, action: 'update', from: row.state, to: row.state, message: `host ${row.name} updated: ${Object.keys(patch).join(', ')}` });
      await this.engine.record(trx, { kind: 'host.update', tenantId: row.tenant_id, targetType: 'host', targetId: row.id, input: { ...patch }, actor }, {});
    });
    await this.engine.recorded('host.update');
    return this.get(row.id);
  }

  /** Refuses while the host holds grants (they must be revoked first, so no access is forgotten). */
  async delete(ref: string, actor: string): Promise<void> {
    const row = await this.resolve(ref);
    await this.store.transaction(async (trx) => {
      const live = await this.repos.grants.listLiveForHost(trx, row.id);
      if (live.length > 0) {
        throw new StowageError('HOST_IN_USE', `host ${row.name} still has access to ${live.length} volume${live.length === 1 ? '' : 's'}; revoke it first (stowage volume revoke VOL --host ${row.name})`, { grantCount: live.length });
      }
      await this.repos.grants.deleteAllForHost(trx, row.id);
      // The host's agent credential goes with it (a host later made with the same name enrolls anew).
      await trx.deleteFrom('api_tokens').where('host_id', '=', row.id).execute();
      await this.repos.hosts.delete(trx, row.id);
      await this.repos.events.append(trx, { tenantId: row.tenant_id, actor, resourceType: 'host', resourceId: row.id, resourceName: row.name, action: 'delete', from: row.state, to: 'deleted', message: `host ${row.name} deleted` });
      await this.engine.record(trx, { kind: 'host.delete', tenantId: row.tenant_id, targetType: 'host', targetId: row.id, input: {}, actor }, {});
    });
    await this.engine.recorded('host.delete');
  }
}

/** The identity drivers bind when granting access. */
export function hostIdentity(row: HostRow): HostIdentity {
  return {
    name: row.name,
    addresses: readJson<string[]>(row.addresses, []),
    ...(row.initiator_name ? { initiatorName: row.initiator_name } : {}),
  };
}

/** The checks every host passes, from POST /v1/hosts and from agents' reports alike. */
export function validateHost(input: HostInput): void {
  assertValidName(input.name, 'host name');
  if (input.initiatorName) assertValidInitiatorName(input.initiatorName);
  if (input.zone) assertValidName(input.zone, 'zone');
  for (const a of input.addresses ?? []) {
    if (isIP(a) === 0) throw new StowageError('VALIDATION_FAILED', `host address ${JSON.stringify(a)} is not an IP address`, { address: a });
  }
}
