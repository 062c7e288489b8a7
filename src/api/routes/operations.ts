import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { compact, nonEmpty } from '../../core/compact.js';
import { OperationGetQuery, OperationListQuery, OperationSchema } from '../../core/schemas/operation-schema.js';
import { Page } from '../../core/models.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { listTenant, resourceTypesFor } from '../auth.js';
import { IdParams } from '../schemas.js';

/** /v1/operations: the journal of every mutating request. */
export function operationRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['operations'];

    app.get('/operations', {
      config: { permission: 'tenant.read' },
      schema: { tags, summary: 'List operations, newest first', querystring: OperationListQuery, response: { 200: Page(OperationSchema), ...errorResponses('FORBIDDEN') } },
    }, async (req) => {
      return deps.operations.list(compact({
        tenantId: listTenant(req.principal, req.query.allTenants), targetTypes: resourceTypesFor(req.principal), limit: req.query.limit,
        state: req.query.state, targetId: nonEmpty(req.query.target), cursor: nonEmpty(req.query.cursor),
      }));
    });

    app.get('/operations/:id', {
      config: { permission: 'tenant.read' },
      schema: {
        tags, summary: 'Show an operation; with ?waitMs=N, answer once it finished or N ms passed', params: IdParams,
        querystring: OperationGetQuery,
        response: { 200: OperationSchema, ...errorResponses('OPERATION_NOT_FOUND') },
      },
    }, async (req) => deps.operations.get(req.params.id, req.principal.tenantId, req.query.waitMs));
  };
}
