import { StowageError } from '../core/errors.js';
import type { GrantState } from '../core/states.js';
import { transition, type PatchOf } from '../store/transition.js';
import type { ConnectionInfoModel } from './access-schema.js';
import type { DriverHandle } from '../drivers/sdk/types.js';
import type { DriverCache } from '../backends/driver-cache.js';
import { hostIdentity } from '../hosts/host-service.js';
import type { OperationHandler, StepContext } from '../operations/handler.js';
import { GrantRepository, HostRepository } from '../store/access-repository.js';
import { BackendRepository } from '../store/backend-repository.js';
import { nowIso, writeJson } from '../store/json.js';
import type { GrantRow, HostRow, VolumeRow } from '../store/schema.js';
import type { Store } from '../store/store.js';
import { VolumeRepository, volumeHandle } from '../store/volume-repository.js';
import type { SecretBox } from '../system/secret-box.js';
import { grantRequestOf } from './grant-secrets.js';
import { requirePort, type AccessPort } from '../drivers/sdk/ports.js';

/** What the grant handlers need. */
export interface AccessOperationDeps {
  readonly store: Store;
  readonly drivers: DriverCache;
  readonly secrets: SecretBox;
}

const grants = new GrantRepository();
const hosts = new HostRepository();
const volumes = new VolumeRepository();
const backends = new BackendRepository();

interface GrantParts { grant: GrantRow; host: HostRow; volume: VolumeRow; access: AccessPort; handle: DriverHandle }

/** The grant with its host, volume and driver (guarded by the operation's lease: a stale worker makes no driver call). */
async function load(deps: AccessOperationDeps, ctx: StepContext, grantId: string): Promise<GrantParts> {
  const grant = await grants.findById(deps.store.db, grantId);
  if (!grant) throw new StowageError('NOT_FOUND', `grant ${grantId} vanished`, {});
  const host = await hosts.findById(deps.store.db, grant.host_id);
  const volume = await volumes.findById(deps.store.db, grant.volume_id);
  if (!host || !volume?.backend_id) throw new StowageError('NOT_FOUND', `grant ${grantId} lost its host or volume`, {});
  const backend = await backends.findById(deps.store.db, volume.backend_id);
  if (!backend) throw new StowageError('BACKEND_NOT_FOUND', `backend ${volume.backend_id} no longer exists`, {});
  return { grant, host, volume, access: requirePort(ctx.guard(deps.drivers.get(backend)), 'access', backend.name), handle: volumeHandle(volume) ?? { id: volume.id, format: volume.format } };
}

/** Applies a grant on the backend: ACL for the host's addresses/initiator, CHAP account; or a file path for local backends. */
export async function applyGrant(deps: AccessOperationDeps, p: GrantParts, signal: AbortSignal): Promise<ConnectionInfoModel> {
  const info = await p.access.grant(p.handle, grantRequestOf(p.grant, p.host, deps.secrets), signal);
  // The secret stays sealed in the grant row; what we keep in clear must not carry it.
  return Object.fromEntries(Object.entries(info).filter(([k]) => k !== 'chapSecret')) as ConnectionInfoModel;
}

/** Moves the grant to `to` with its event, filed under the volume (where operators look for who has access). */
async function finish(deps: AccessOperationDeps, ctx: StepContext, p: GrantParts, to: GrantState, patch: PatchOf<'grant'>, message: string): Promise<void> {
  await ctx.write((trx) => transition(trx, 'grant', {
    id: p.grant.id, tenantId: p.grant.tenant_id, to, patch,
    event: {
      actor: ctx.operation.actor, action: `grant-${to}`, message, operationId: ctx.operation.id, details: { host: p.host.name, mode: p.grant.mode },
      subject: { type: 'volume', id: p.volume.id, name: p.volume.name },
    },
  }));
}

/** grant.create: bind on the backend, then mark the grant active with its connection info (no secret stored in clear). */
export function grantCreateHandler(deps: AccessOperationDeps): OperationHandler {
  return {
    kind: 'grant.create',
    steps: [
      {
        name: 'bind',
        run: async (ctx) => {
          const p = await load(deps, ctx, ctx.operation.target_id);
          const info = await applyGrant(deps, p, ctx.signal);
          await ctx.write((trx) => grants.update(trx, p.grant.id, { connection: writeJson(info), updated_at: nowIso() }));
        },
      },
      {
        name: 'activate',
        run: async (ctx) => {
          const p = await load(deps, ctx, ctx.operation.target_id);
          if (p.grant.state === 'active') return;
          await finish(deps, ctx, p, 'active', { state_reason: null }, `host ${p.host.name} has ${p.grant.mode} access to ${p.volume.name}`);
        },
      },
    ],
    compensate: async (ctx, error) => {
      const p = await load(deps, ctx, ctx.operation.target_id);
      if (p.grant.state === 'revoked') return;
      await p.access.revoke(p.handle, hostIdentity(p.host), ctx.signal);
      await finish(deps, ctx, p, 'revoked', { state_reason: `grant failed: ${error.message}` }, `granting ${p.host.name} access to ${p.volume.name} failed: ${error.message}`);
    },
    result: async (ctx) => ({ grantId: ctx.operation.target_id }),
  };
}

/** grant.revoke: unbind the host and drop its live sessions, then mark the grant revoked. */
export function grantRevokeHandler(deps: AccessOperationDeps): OperationHandler {
  return {
    kind: 'grant.revoke',
    steps: [
      {
        name: 'unbind',
        run: async (ctx) => {
          const p = await load(deps, ctx, ctx.operation.target_id);
          await p.access.revoke(p.handle, hostIdentity(p.host), ctx.signal);
        },
      },
      {
        name: 'finalize',
        run: async (ctx) => {
          const p = await load(deps, ctx, ctx.operation.target_id);
          if (p.grant.state === 'revoked') return;
          await finish(deps, ctx, p, 'revoked', { state_reason: null }, `host ${p.host.name} no longer has access to ${p.volume.name}`);
        },
      },
    ],
    compensate: async (ctx, error) => {
      const p = await load(deps, ctx, ctx.operation.target_id);
      if (p.grant.state === 'revoked') return;
      // The access may still be bound: keep the grant visible as error so nobody forgets it; the reconciler retries.
      await finish(deps, ctx, p, 'error', { state_reason: `revoke failed: ${error.message}; run the revoke again once the backend is back` }, `revoking ${p.host.name} from ${p.volume.name} failed: ${error.message}`);
    },
    result: async (ctx) => ({ grantId: ctx.operation.target_id }),
  };
}
