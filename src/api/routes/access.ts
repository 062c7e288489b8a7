import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ConnectionInfoSchema, GrantAnswer, GrantBody, GrantList, GrantParams, RevokeAnswer } from '../../core/schemas/access-schema.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { SECRET_ANSWER } from '../idempotency.js';
import { RefParams, WaitQuery } from '../schemas.js';
import { maybeWait } from './wait.js';

/** /v1/volumes/:ref/grants: host access to a volume on its backend. */
export function accessRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['access'];
    // Its answer carries the CHAP secret, so it is not kept for replay: a retry grants again, which
    // answers the live grant and reads its sealed secret anew (granting is idempotent by itself).
    app.post('/volumes/:ref/grants', {
      config: { ...SECRET_ANSWER, permission: 'tenant.write' },
      schema: { tags, summary: 'Grant a host access (ACL + CHAP on the backend); answers with the connection info once active', params: RefParams, body: GrantBody, querystring: WaitQuery, response: { 200: GrantAnswer, 202: GrantAnswer, ...errorResponses('VOLUME_NOT_FOUND', 'HOST_NOT_FOUND', 'INVALID_STATE', 'VOLUME_IN_USE', 'CAPABILITY_MISSING', 'DRIVER_FAILED') } },
    }, async (req, reply) => {
      const ctx = { actor: req.principal.actor, tenantId: req.principal.tenantId, idempotencyKey: undefined };
      const s = await deps.access.grant(req.params.ref, req.body.host, req.body.mode, ctx);
      const { op, finished } = await maybeWait(deps.engine, s.operation, req.query.wait, req.query.timeoutMs);
      const connection = finished ? await deps.access.connection(req.params.ref, req.body.host, ctx) : null;
      const grant = (await deps.access.listForVolume(req.params.ref, ctx.tenantId)).find((g) => g.id === s.grant.id) ?? s.grant;
      return reply.status(finished ? 200 : 202).send({ grant, operation: op, connection });
    });
    app.get('/volumes/:ref/grants', { config: { permission: 'tenant.read' }, schema: { tags, summary: 'Hosts with access to a volume (no secrets)', params: RefParams, response: { 200: GrantList, ...errorResponses('VOLUME_NOT_FOUND') } } }, async (req) => ({ items: await deps.access.listForVolume(req.params.ref, req.principal.tenantId), nextCursor: null }));
    app.get('/volumes/:ref/grants/:host/connection', { config: { permission: 'grant.secrets' }, schema: { tags, summary: 'Connection info of an active grant, CHAP secret included (audited)', params: GrantParams, response: { 200: ConnectionInfoSchema, ...errorResponses('VOLUME_NOT_FOUND', 'HOST_NOT_FOUND', 'NOT_FOUND') } } }, async (req) => deps.access.connection(req.params.ref, req.params.host, { actor: req.principal.actor, tenantId: req.principal.tenantId, idempotencyKey: undefined }));
    app.delete('/volumes/:ref/grants/:host', {
      config: { permission: 'tenant.write' },
      schema: { tags, summary: 'Revoke a host\'s access and drop its live sessions', params: GrantParams, querystring: WaitQuery, response: { 200: RevokeAnswer, 202: RevokeAnswer, ...errorResponses('VOLUME_NOT_FOUND', 'HOST_NOT_FOUND', 'NOT_FOUND', 'INVALID_STATE') } },
    }, async (req, reply) => {
      const s = await deps.access.revoke(req.params.ref, req.params.host, { actor: req.principal.actor, tenantId: req.principal.tenantId, idempotencyKey: undefined });
      const { op, finished } = await maybeWait(deps.engine, s.operation, req.query.wait, req.query.timeoutMs);
      return reply.status(finished ? 200 : 202).send({ grant: finished ? { ...s.grant, state: 'revoked' as const } : s.grant, operation: op });
    });
  };
}
