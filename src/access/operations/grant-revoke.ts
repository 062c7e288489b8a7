import { Type } from '@sinclair/typebox';
import { defineOperation } from '../../operations/define-operation.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { loadGrant, moveGrant, revokeOnBackend } from './grant-steps.js';

/** grant.revoke's input: the volume and host of the grant (kept for the journal). */
export const GrantRevokeInput = Type.Object({ volumeId: Type.String(), hostId: Type.String() });

/** grant.revoke: unbind the host and drop its live sessions, then mark the grant revoked. */
export function grantRevoke(deps: OperationDeps) {
  return defineOperation({
    kind: 'grant.revoke',
    input: GrantRevokeInput,
    steps: [
      {
        name: 'unbind',
        run: async (ctx) => {
          const { grant, host } = await loadGrant(deps, ctx.operation.target_id);
          if ((await revokeOnBackend(deps, ctx, grant, host)) === 'nothing-to-revoke') ctx.note('the volume\'s backend no longer exists: nothing left to revoke on');
        },
      },
      {
        name: 'finalize',
        run: async (ctx) => {
          const p = await loadGrant(deps, ctx.operation.target_id);
          if (p.grant.state === 'revoked') return;
          await moveGrant(ctx, p.grant, p.host, p.volume, 'revoked', `host ${p.host.name} no longer has access to ${p.volume.name}`, { state_reason: null });
        },
      },
    ],
    compensate: async (ctx, error) => {
      const p = await loadGrant(deps, ctx.operation.target_id);
      if (p.grant.state === 'revoked') return;
      // The access may still be bound: keep the grant visible as error so nobody forgets it; the reconciler retries.
      await moveGrant(ctx, p.grant, p.host, p.volume, 'error', `revoking ${p.host.name} from ${p.volume.name} failed: ${error.message}`, { state_reason: `revoke failed: ${error.message}; run the revoke again once the backend is back` });
    },
    result: async (ctx) => ({ grantId: ctx.operation.target_id }),
  });
}
