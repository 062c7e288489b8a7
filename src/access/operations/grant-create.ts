import { Type } from '@sinclair/typebox';
import { ACCESS_MODES } from '../../core/states.js';
import { defineOperation, oneOf } from '../../operations/define-operation.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { nowIso, writeJson } from '../../store/json.js';
import { bindGrant, loadGrant, loadGrantParts, moveGrant, revokeOnBackend } from './grant-steps.js';

/** grant.create's input: which host gets which access to which volume (the grant row holds the rest). */
export const GrantCreateInput = Type.Object({ volumeId: Type.String(), hostId: Type.String(), mode: oneOf(ACCESS_MODES) });

/** grant.create: bind on the backend, then mark the grant active with its connection info (no secret stored in clear). */
export function grantCreate(deps: OperationDeps) {
  return defineOperation({
    kind: 'grant.create',
    input: GrantCreateInput,
    steps: [
      {
        name: 'bind',
        run: async (ctx) => {
          const p = await loadGrantParts(deps, ctx, ctx.operation.target_id);
          const info = await bindGrant(deps, p, ctx.signal);
          await ctx.write((trx) => deps.repos.grants.update(trx, p.grant.id, { connection: writeJson(info), updated_at: nowIso() }));
        },
      },
      {
        name: 'activate',
        run: async (ctx) => {
          const p = await loadGrant(deps, ctx.operation.target_id);
          if (p.grant.state === 'active') return;
          await moveGrant(ctx, p.grant, p.host, p.volume, 'active', `host ${p.host.name} has ${p.grant.mode} access to ${p.volume.name}`, { state_reason: null });
        },
      },
    ],
    compensate: async (ctx, error) => {
      const p = await loadGrant(deps, ctx.operation.target_id);
      if (p.grant.state === 'revoked') return;
      await revokeOnBackend(deps, ctx, p.grant, p.host);
      await moveGrant(ctx, p.grant, p.host, p.volume, 'revoked', `granting ${p.host.name} access to ${p.volume.name} failed: ${error.message}`, { state_reason: `grant failed: ${error.message}` });
    },
    result: async (ctx) => ({ grantId: ctx.operation.target_id }),
  });
}
