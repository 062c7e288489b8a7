import { Type } from '@sinclair/typebox';
import { defineOperation } from '../../operations/define-operation.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { loadAttachment, revokeIfUnused, setAttachmentState, waitDisconnected } from '../attachment-steps.js';

/** attachment.detach's input: nothing beyond its target. */
export const AttachmentDetachInput = Type.Object({});

/** attachment.detach: the agent unplugs and disconnects (skipped if the host is down) → revoke → gone. */
export function attachmentDetach(deps: OperationDeps) {
  return defineOperation({
    kind: 'attachment.detach',
    input: AttachmentDetachInput,
    steps: [
      {
        name: 'disconnect',
        run: async (ctx) => {
          const outcome = await waitDisconnected(deps, ctx.operation.target_id, ctx.signal);
          ctx.note(outcome);
          const a = await loadAttachment(deps, ctx.operation.target_id);
          await setAttachmentState(ctx, a, 'revoking', outcome === 'disconnected' ? 'disconnected by the agent; revoking access' : `host did not confirm (${outcome}); revoking access anyway`);
        },
      },
      {
        name: 'revoke',
        run: async (ctx) => {
          const a = await loadAttachment(deps, ctx.operation.target_id);
          const revoked = await revokeIfUnused(deps, a, ctx);
          if (!revoked) ctx.note('grant kept: another attachment on this host uses it');
        },
      },
      {
        name: 'finalize',
        run: async (ctx) => {
          const a = await loadAttachment(deps, ctx.operation.target_id);
          await setAttachmentState(ctx, a, 'gone', `detached from ${a.instance}`, { state_reason: null, device_id: null });
        },
      },
    ],
    compensate: async (ctx, error) => {
      const a = await loadAttachment(deps, ctx.operation.target_id);
      if (a.state === 'gone') return;
      await setAttachmentState(ctx, a, 'error', `detach failed: ${error.message}`, { state_reason: `detach failed: ${error.message}; the reconciler retries the revoke, or run the detach again` });
    },
  });
}
