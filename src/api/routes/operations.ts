import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { StowageError } from '../../core/errors.js';
import { compact, nonEmpty } from '../../core/compact.js';
import { OperationGetQuery, OperationListQuery, OperationSchema } from '../../operations/operation-schema.js';
import { Page } from '../../core/models.js';
import { OperationRepository, toOperation } from '../../store/operation-repository.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { IdParams } from '../schemas.js';

/** /v1/operations: the journal of every mutating request. */
export function operationRoutes(deps: AppDeps): FastifyPluginAsync {
  const repo = new OperationRepository();
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['operations'];

    app.get('/operations', {
      schema: { tags, summary: 'List operations, newest first', querystring: OperationListQuery, response: { 200: Page(OperationSchema), ...errorResponses() } },
    }, async (req) => {
      const { rows, nextCursor } = await repo.list(deps.store.db, compact({
        tenantId: req.principal.tenantId, limit: req.query.limit,
        state: req.query.state, targetId: nonEmpty(req.query.target), cursor: nonEmpty(req.query.cursor),
      }));
      return { items: rows.map(toOperation), nextCursor };
    });

    app.get('/operations/:id', {
      schema: {
        tags, summary: 'Show an operation; with ?waitMs=N, answer once it finished or N ms passed', params: IdParams,
        querystring: OperationGetQuery,
        response: { 200: OperationSchema, ...errorResponses('OPERATION_NOT_FOUND') },
      },
    }, async (req) => {
      const row = await repo.findById(deps.store.db, req.params.id);
      if (row?.tenant_id !== req.principal.tenantId) {
        throw new StowageError('OPERATION_NOT_FOUND', `operation ${req.params.id} does not exist`, { id: req.params.id });
      }
      return req.query.waitMs > 0 ? deps.engine.waitFor(row.id, req.query.waitMs) : toOperation(row);
    });
  };
}
