import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { QuotaReportSchema, SetQuotaBody } from '../../core/schemas/quota-schema.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { RefParams } from '../schemas.js';

/** /v1/quotas (the caller's tenant) and /v1/tenants/{ref}/quota (system admins). */
export function quotaRoutes(deps: AppDeps): FastifyPluginAsync {
  const { quotas } = deps;
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['quotas'];

    app.get('/quotas', {
      config: { permission: 'tenant.read' },
      schema: { tags, summary: "The caller's tenant: each quota (volumes, bytes, snapshots; tenant-wide and per class) with its usage and what is free", response: { 200: QuotaReportSchema, ...errorResponses('FORBIDDEN') } },
    }, async (req) => quotas.report(req.principal.tenantId));

    app.get('/tenants/:ref/quota', {
      config: { permission: 'system.admin' },
      schema: { tags, summary: "A tenant's quotas with their usage", params: RefParams, response: { 200: QuotaReportSchema, ...errorResponses('TENANT_NOT_FOUND', 'FORBIDDEN') } },
    }, async (req) => quotas.show(req.params.ref));

    app.put('/tenants/:ref/quota', {
      config: { permission: 'system.admin' },
      schema: {
        tags, summary: 'Set limits of a tenant, or of one class within it (`class`); null clears a limit, an absent field stays. Enforced when volumes are created or grown and snapshots taken, in the placement transaction',
        params: RefParams, body: SetQuotaBody, response: { 200: QuotaReportSchema, ...errorResponses('TENANT_NOT_FOUND', 'CLASS_NOT_FOUND', 'FORBIDDEN') },
      },
    }, async (req) => quotas.set(req.params.ref, req.body));
  };
}
