import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { EventSchema, Page } from '../../core/models.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { EventListQuery } from '../schemas.js';

/** /v1/events: the audit log of every state change. */
export function eventRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    app.get('/events', {
      schema: { tags: ['events'], summary: 'List events, newest first (or oldest first after a sequence number)', querystring: EventListQuery, response: { 200: Page(EventSchema), ...errorResponses() } },
    }, async (req) => deps.events.list({
      limit: req.query.limit,
      ...(req.query.cursor ? { before: Number(req.query.cursor) } : {}),
      ...(req.query.after !== undefined ? { after: req.query.after } : {}),
      ...(req.query.resource ? { resourceId: req.query.resource } : {}),
      ...(req.query.type ? { resourceType: req.query.type } : {}),
    }));
  };
}
