import type { OperationHandler } from '../operations/handler.js';
import { ensureGrant, loadAttachment, revokeIfUnused, setAttachmentState, waitConnected, waitDisconnected, type AttachDeps } from './attachment-steps.js';

/** attachment.attach: grant on the backend → the agent connects and hot-plugs → attached. */
export function attachHandler(deps: AttachDeps): OperationHandler {
  return {
    kind: 'attachment.attach',
    steps: [
      {
        name: 'grant',
        run: async (ctx) => {
          const a = await loadAttachment(deps, ctx.operation.target_id);
          await ensureGrant(deps, a, ctx.signal, { actor: ctx.operation.actor, operationId: ctx.operation.id });
          await setAttachmentState(deps, a, 'connecting', ctx.operation.actor, `access granted; waiting for host's agent to connect ${a.instance}`, {}, ctx.operation.id);
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
          await setAttachmentState(deps, a, 'attached', ctx.operation.actor, `attached to ${a.instance} as ${a.device_id ?? '?'}`, {}, ctx.operation.id);
        },
      },
    ],
    // Never half attached: whatever was granted is revoked; the agent removes the device as unwanted.
    compensate: async (ctx, error) => {
      const a = await loadAttachment(deps, ctx.operation.target_id);
      if (a.state === 'error' || a.state === 'gone') return;
      await setAttachmentState(deps, a, 'revoking', ctx.operation.actor, `attach failed (${error.message}); revoking`, {}, ctx.operation.id);
      await revokeIfUnused(deps, a, ctx.signal, { actor: ctx.operation.actor, operationId: ctx.operation.id });
      await setAttachmentState(deps, a, 'error', ctx.operation.actor, `attach failed: ${error.message}`, { state_reason: `attach failed: ${error.message}` }, ctx.operation.id);
    },
    result: async (ctx) => {
      const a = await loadAttachment(deps, ctx.operation.target_id);
      return { attachmentId: a.id, deviceId: a.device_id };
    },
  };
}

/** attachment.detach: the agent unplugs and disconnects (skipped if the host is down) → revoke → gone. */
export function detachHandler(deps: AttachDeps): OperationHandler {
  return {
    kind: 'attachment.detach',
    steps: [
      {
        name: 'disconnect',
        run: async (ctx) => {
          const outcome = await waitDisconnected(deps, ctx.operation.target_id, ctx.signal);
          ctx.note(outcome);
          const a = await loadAttachment(deps, ctx.operation.target_id);
          await setAttachmentState(deps, a, 'revoking', ctx.operation.actor, outcome === 'disconnected' ? 'disconnected by the agent; revoking access' : `host did not confirm (${outcome}); revoking access anyway`, {}, ctx.operation.id);
        },
      },
      {
        name: 'revoke',
        run: async (ctx) => {
          const a = await loadAttachment(deps, ctx.operation.target_id);
          const revoked = await revokeIfUnused(deps, a, ctx.signal, { actor: ctx.operation.actor, operationId: ctx.operation.id });
          if (!revoked) ctx.note('grant kept: another attachment on this host uses it');
        },
      },
      {
        name: 'finalize',
        run: async (ctx) => {
          const a = await loadAttachment(deps, ctx.operation.target_id);
          await setAttachmentState(deps, a, 'gone', ctx.operation.actor, `detached from ${a.instance}`, { state_reason: null, device_id: null }, ctx.operation.id);
        },
      },
    ],
    compensate: async (ctx, error) => {
      const a = await loadAttachment(deps, ctx.operation.target_id);
      if (a.state === 'gone') return;
      await setAttachmentState(deps, a, 'error', ctx.operation.actor, `detach failed: ${error.message}`, { state_reason: `detach failed: ${error.message}; the reconciler retries the revoke, or run the detach again` }, ctx.operation.id);
    },
  };
}
