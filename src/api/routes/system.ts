import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { RetentionReportSchema } from '../../core/schemas/retention-schema.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';

/** A sweep asked for through the API stops after this long (the answer then says `complete: false`; ask again). */
const API_SWEEP_TIMEOUT_MS = 60_000;

/** /v1/system: the control plane's own housekeeping (admins only). */
export function systemRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['system'];
    app.get('/system/retention', {
      config: { permission: 'system.admin' },
      schema: { tags, summary: 'The retention policy of finished operations and events, how many are kept, the oldest kept, and what the last sweep did', response: { 200: RetentionReportSchema, ...errorResponses() } },
    }, async () => deps.retention.report());
    app.post('/system/retention/sweep', {
      config: { permission: 'system.admin' },
      schema: { tags, summary: 'Run one retention sweep now (archive, then delete what is past the policy); answers the report with this sweep as lastSweep', response: { 200: RetentionReportSchema, ...errorResponses('INVALID_STATE') } },
    }, async () => {
      await deps.retention.sweep(AbortSignal.timeout(API_SWEEP_TIMEOUT_MS));
      return deps.retention.report();
    });
  };
}
