import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import {
  AgentAnswerSchema, AgentReportQuery, AgentReportSchema, AttachBody, AttachmentListQuery, AttachmentSchema, AttachmentWithOperation,
  AttachmentWithOperationList, DetachVolumeBody, EvacuateBody,
} from '../../core/schemas/attachment-schema.js';
import { MigrationBody, MigrationSchema, MigrationWithOperation } from '../../core/schemas/migration-schema.js';
import { compact, nonEmpty } from '../../core/compact.js';
import { Page, TenantListQuery } from '../../core/models.js';
import { OperationList, OperationSchema, type Operation } from '../../core/schemas/operation-schema.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { listTenant } from '../auth.js';
import { IdParams, RefParams, WaitQuery, type WaitQueryT } from '../schemas.js';
import { maybeWait } from './wait.js';

function ctxOf(req: FastifyRequest) {
  return { actor: req.principal.actor, tenantId: req.principal.tenantId, idempotencyKey: undefined };
}

/** Attachments, agents' reports, live migrations, fencing and evacuation. */
export function attachmentRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();

    const answerAttachment = async (req: FastifyRequest, s: { attachment: { id: string }; operation: Operation }, q: WaitQueryT) => {
      const { op, finished } = await maybeWait(deps.engine, s.operation, q.wait, q.timeoutMs);
      const attachment = await deps.attachments.present(await deps.attachments.resolve(s.attachment.id, req.principal.tenantId));
      return { finished, body: { attachment, operation: op } };
    };

    app.post('/volumes/:ref/attachments', {
      config: { permission: 'tenant.write' },
      schema: { tags: ['attachments'], summary: 'Attach a volume to an instance on a host: grant, the agent connects and hot-plugs, attached', params: RefParams, body: AttachBody, querystring: WaitQuery, response: { 200: AttachmentWithOperation, 202: AttachmentWithOperation, ...errorResponses('VOLUME_NOT_FOUND', 'HOST_NOT_FOUND', 'INVALID_STATE', 'VOLUME_IN_USE', 'HOST_NOT_FENCED', 'TIMEOUT') } },
    }, async (req, reply) => {
      const s = await deps.attachments.attach({ volume: req.params.ref, host: req.body.host, instance: req.body.instance, mode: req.body.mode }, ctxOf(req));
      const { finished, body } = await answerAttachment(req, s, req.query);
      return reply.status(finished ? 200 : 202).send(body);
    });

    app.post('/volumes/:ref/detach', {
      config: { permission: 'tenant.write' },
      schema: { tags: ['attachments'], summary: 'Detach a volume everywhere (or from one host): unplug, disconnect, revoke — the revoke happens even if the host is down', params: RefParams, body: DetachVolumeBody, querystring: WaitQuery, response: { 200: AttachmentWithOperationList, 202: AttachmentWithOperationList, ...errorResponses('VOLUME_NOT_FOUND', 'ATTACHMENT_NOT_FOUND', 'INVALID_STATE') } },
    }, async (req, reply) => {
      const all = await deps.attachments.detachVolume(req.params.ref, ctxOf(req), req.body.host);
      const items = [];
      let finished = true;
      for (const s of all) {
        const r = await answerAttachment(req, s, req.query);
        finished &&= r.finished;
        items.push(r.body);
      }
      return reply.status(finished ? 200 : 202).send({ items });
    });

    app.get('/attachments', {
      config: { permission: 'tenant.read' },
      schema: { tags: ['attachments'], summary: 'List attachments (oldest first; paginated)', querystring: AttachmentListQuery, response: { 200: Page(AttachmentSchema), ...errorResponses('FORBIDDEN') } },
    }, async (req) => deps.attachments.list(listTenant(req.principal, req.query.allTenants), compact({ volume: nonEmpty(req.query.volume), host: nonEmpty(req.query.host), all: req.query.all }), req.query));

    app.get('/attachments/:id', { config: { permission: 'tenant.read' }, schema: { tags: ['attachments'], summary: 'Show an attachment', params: IdParams, response: { 200: AttachmentSchema, ...errorResponses('ATTACHMENT_NOT_FOUND') } } }, async (req) => deps.attachments.present(await deps.attachments.resolve(req.params.id, req.principal.tenantId)));

    app.post('/attachments/:id/detach', {
      config: { permission: 'tenant.write' },
      schema: { tags: ['attachments'], summary: 'Detach one attachment', params: IdParams, querystring: WaitQuery, response: { 200: AttachmentWithOperation, 202: AttachmentWithOperation, ...errorResponses('ATTACHMENT_NOT_FOUND', 'INVALID_STATE') } },
    }, async (req, reply) => {
      const s = await deps.attachments.detach(req.params.id, ctxOf(req));
      const { finished, body } = await answerAttachment(req, s, req.query);
      return reply.status(finished ? 200 : 202).send(body);
    });

    app.post('/agents/:ref/report', {
      config: { permission: 'agent.report' },
      schema: { tags: ['agents'], summary: 'An agent\'s heartbeat: what is really connected on its host; answers with what should be (CHAP included). With waitMs, holds the answer until that changes', params: RefParams, body: AgentReportSchema, querystring: AgentReportQuery, response: { 200: AgentAnswerSchema, ...errorResponses('INVALID_NAME') } },
    }, async (req) => deps.attachments.report(req.params.ref, req.body, req.principal.actor, req.principal.tenantId, req.query.waitMs));

    app.post('/hosts/:ref/fence', {
      config: { permission: 'system.admin' },
      schema: { tags: ['hosts'], summary: 'Fence a host: revoke all its access and drop its sessions, then mark it fenced', params: RefParams, querystring: WaitQuery, response: { 200: OperationSchema, 202: OperationSchema, ...errorResponses('HOST_NOT_FOUND') } },
    }, async (req, reply) => {
      const op = await deps.fencing.fence(req.params.ref, ctxOf(req));
      const { op: done, finished } = await maybeWait(deps.engine, op, req.query.wait, req.query.timeoutMs);
      return reply.status(finished ? 200 : 202).send(done);
    });
    app.post('/hosts/:ref/unfence', { config: { permission: 'system.admin' }, schema: { tags: ['hosts'], summary: 'Return a fenced host to service', params: RefParams, response: { 204: Type.Null(), ...errorResponses('HOST_NOT_FOUND', 'INVALID_STATE') } } }, async (req, reply) => {
      await deps.fencing.unfence(req.params.ref, ctxOf(req));
      return reply.status(204).send(null);
    });
    app.post('/hosts/:ref/evacuate', {
      config: { permission: 'system.admin' },
      schema: { tags: ['hosts'], summary: 'Attach every volume of a fenced host to the same-named instances on another host', params: RefParams, body: EvacuateBody, querystring: WaitQuery, response: { 200: OperationList, 202: OperationList, ...errorResponses('HOST_NOT_FOUND', 'HOST_NOT_FENCED') } },
    }, async (req, reply) => {
      const ops = await deps.fencing.evacuate(req.params.ref, req.body.to, ctxOf(req));
      const items = [];
      let finished = true;
      for (const op of ops) {
        const r = await maybeWait(deps.engine, op, req.query.wait, req.query.timeoutMs);
        finished &&= r.finished;
        items.push(r.op);
      }
      return reply.status(finished ? 200 : 202).send({ items });
    });

    app.post('/migrations', {
      config: { permission: 'tenant.write' },
      schema: { tags: ['migrations'], summary: 'Start a live migration\'s storage handoff: grant and connect on the destination', body: MigrationBody, querystring: WaitQuery, response: { 200: MigrationWithOperation, 202: MigrationWithOperation, ...errorResponses('HOST_NOT_FOUND', 'ATTACHMENT_NOT_FOUND', 'INVALID_STATE') } },
    }, async (req, reply) => {
      const s = await deps.migrations.start(req.body.instance, req.body.from, req.body.to, ctxOf(req));
      const { op, finished } = await maybeWait(deps.engine, s.operation, req.query.wait, req.query.timeoutMs);
      return reply.status(finished ? 200 : 202).send({ migration: await deps.migrations.get(s.migration.id, req.principal.tenantId), operation: op });
    });
    app.get('/migrations', { config: { permission: 'tenant.read' }, schema: { tags: ['migrations'], summary: 'List migrations (newest first; paginated)', querystring: TenantListQuery, response: { 200: Page(MigrationSchema), ...errorResponses('FORBIDDEN') } } }, async (req) => deps.migrations.list(listTenant(req.principal, req.query.allTenants), req.query));
    app.post('/migrations/find', { config: { permission: 'tenant.write' }, schema: { tags: ['migrations'], summary: 'The open migration of an instance between two hosts', body: MigrationBody, response: { 200: MigrationSchema, ...errorResponses('NOT_FOUND') } } }, async (req) => deps.migrations.get(await deps.migrations.findOpen(req.body.instance, req.body.from, req.body.to, req.principal.tenantId), req.principal.tenantId));
    for (const verb of ['complete', 'abort'] as const) {
      app.post(`/migrations/:id/${verb}`, {
        config: { permission: 'tenant.write' },
        schema: { tags: ['migrations'], summary: verb === 'complete' ? 'Finish a migration: disconnect and revoke on the source' : 'Abort a migration: undo the destination side', params: IdParams, querystring: WaitQuery, response: { 200: MigrationWithOperation, 202: MigrationWithOperation, ...errorResponses('NOT_FOUND', 'INVALID_STATE') } },
      }, async (req, reply) => {
        const s = verb === 'complete' ? await deps.migrations.complete(req.params.id, ctxOf(req)) : await deps.migrations.abort(req.params.id, ctxOf(req));
        const { op, finished } = await maybeWait(deps.engine, s.operation, req.query.wait, req.query.timeoutMs);
        return reply.status(finished ? 200 : 202).send({ migration: await deps.migrations.get(s.migration.id, req.principal.tenantId), operation: op });
      });
    }
  };
}
