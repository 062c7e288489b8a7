import { Type } from '@sinclair/typebox';
import { ACCESS_MODES } from '../../core/states.js';
import { defineOperation, oneOf } from '../../operations/define-operation.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import { ensureGrant, loadAttachment, revokeIfUnused, setAttachmentState, waitConnected } from '../attachment-steps.js';

/** attachment.attach's input: what was asked (the attachment row holds the rest). */
export const AttachmentAttachInput = Type.Object({ volumeId: Type.String(), hostId: Type.String(), instance: Type.String(), mode: oneOf(ACCESS_MODES) });

/** attachment.attach: grant on the backend → the agent connects and hot-plugs → attached. */
export function attachmentAttach(deps: OperationDeps) {
  return defineOperation({
    kind: 'attachment.attach',
    input: AttachmentAttachInput,
    steps: [
      {
        name: 'grant',
        run: async (ctx) => {
          const a = await loadAttachment(deps, ctx.operation.target_id);
          await ensureGrant(deps, a, ctx);
          await setAttachmentState(ctx, a, 'connecting', `access granted; waiting for host's agent to connect ${a.instance}`);
        },
      },
      {
        name: 'connect',
        run: async (ctx) => {
          const a = await waitConnected(deps, ctx.operation.target_id, ctx.signal);
          ctx.note(`device ${a.device_id ?? '?'}`);
        },
      },
      {
        name: 'activate',
        run: async (ctx) => {
          const a = await loadAttachment(deps, ctx.operation.target_id);
          await setAttachmentState(ctx, a, 'attached', `attached to ${a.instance} as ${a.device_id ?? '?'}`);
        },
      },
    ],
    // Never half attached: whatever was granted is revoked; the agent removes the device as unwanted.
    compensate: async (ctx, error) => {
      const a = await loadAttachment(deps, ctx.operation.target_id);
      if (a.state === 'error' || a.state === 'gone') return;
      await setAttachmentState(ctx, a, 'revoking', `attach failed (${error.message}); revoking`);
      await revokeIfUnused(deps, a, ctx);
      await setAttachmentState(ctx, a, 'error', `attach failed: ${error.message}`, { state_reason: `attach failed: ${error.message}` });
    },
    result: async (ctx) => {
      const a = await loadAttachment(deps, ctx.operation.target_id);
      return { attachmentId: a.id, deviceId: a.device_id };
    },
  });
}
