import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { compact, nonEmpty } from '../../core/compact.js';
import { EventListQuery, EventSchema } from '../../core/schemas/event-schema.js';
import { Page } from '../../core/models.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { listTenant, resourceTypesFor } from '../auth.js';

/** /v1/events: the audit log of every state change. */
export function eventRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    app.get('/events', {
      config: { permission: 'tenant.read' },
      schema: {
        tags: ['events'], summary: 'List events, newest first (or oldest first after a sequence number): its tenant\'s resources\' for members and readers, everything of its tenant for admins (every tenant\'s with allTenants)',
        querystring: EventListQuery, response: { 200: Page(EventSchema), ...errorResponses('FORBIDDEN') },
      },
    }, async (req) => deps.events.list(compact({
      tenantId: listTenant(req.principal, req.query.allTenants),
      resourceTypes: resourceTypesFor(req.principal),
      limit: req.query.limit,
      before: req.query.cursor === undefined ? undefined : Number(req.query.cursor),
      after: req.query.after,
      resourceId: nonEmpty(req.query.resource),
      resourceType: nonEmpty(req.query.type),
    })));
  };
}
