import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { Page, PlainListQuery } from '../../core/models.js';
import { OperationSchema } from '../../core/schemas/operation-schema.js';
import {
  CreateTenantBody, CreateTokenBody, CreateUserBody, CreatedTokenSchema, DeleteTenantQuery, TenantSchema, TokenListQuery, TokenSchema,
  UpdateTenantBody, UpdateUserBody, UserListQuery, UserSchema, WhoamiSchema,
} from '../../core/schemas/tenant-schema.js';
import type { Caller } from '../../tenants/tenant-service.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { SECRET_ANSWER } from '../idempotency.js';
import { RefParams, WaitQuery } from '../schemas.js';
import { maybeWait } from './wait.js';

const DeleteQuery = Type.Object({ ...DeleteTenantQuery.properties, ...WaitQuery.properties }, { additionalProperties: false });
const TenantDeleted = Type.Object({ operation: OperationSchema });

function callerOf(req: FastifyRequest): Caller {
  const p = req.principal;
  return { tenantId: p.tenantId, role: p.role, actor: p.actor, tokenId: p.tokenId, userId: p.userId };
}

/**
 * /v1/tenants, /v1/users (system admins), /v1/tokens and /v1/whoami (everyone, for themselves).
 * `forgetTokens` drops the authenticator's cache after a revocation, so it bites at once here.
 */
export function tenantRoutes(deps: AppDeps, forgetTokens: () => void): FastifyPluginAsync {
  const { tenants } = deps;
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();

    app.post('/tenants', {
      config: { permission: 'system.admin' },
      schema: { tags: ['tenants'], summary: 'Create a tenant', body: CreateTenantBody, response: { 201: TenantSchema, ...errorResponses('INVALID_NAME', 'NAME_TAKEN', 'FORBIDDEN') } },
    }, async (req, reply) => reply.status(201).send(await tenants.createTenant(req.body)));

    app.get('/tenants', {
      config: { permission: 'system.admin' },
      schema: { tags: ['tenants'], summary: 'List tenants with what each owns', querystring: PlainListQuery, response: { 200: Page(TenantSchema), ...errorResponses('FORBIDDEN') } },
    }, async (req) => tenants.listTenants(req.query));

    app.get('/tenants/:ref', {
      config: { permission: 'system.admin' },
      schema: { tags: ['tenants'], summary: 'Show one tenant', params: RefParams, response: { 200: TenantSchema, ...errorResponses('TENANT_NOT_FOUND', 'FORBIDDEN') } },
    }, async (req) => tenants.getTenant(req.params.ref));

    app.patch('/tenants/:ref', {
      config: { permission: 'system.admin' },
      schema: { tags: ['tenants'], summary: 'Change a tenant\'s description', params: RefParams, body: UpdateTenantBody, response: { 200: TenantSchema, ...errorResponses('TENANT_NOT_FOUND', 'FORBIDDEN') } },
    }, async (req) => tenants.updateTenant(req.params.ref, req.body));

    app.delete('/tenants/:ref', {
      config: { permission: 'system.admin' },
      schema: {
        tags: ['tenants'], params: RefParams, querystring: DeleteQuery,
        summary: 'Delete a tenant that owns nothing (409 TENANT_NOT_EMPTY with the counts otherwise); with ?cascade=true, everything it owns too, by one durable operation (202, or waited for with ?wait=true)',
        response: { 200: TenantDeleted, 202: TenantDeleted, 204: Type.Null(), ...errorResponses('TENANT_NOT_FOUND', 'TENANT_NOT_EMPTY', 'INVALID_STATE', 'FORBIDDEN', 'BACKEND_UNAVAILABLE', 'TIMEOUT') },
      },
    }, async (req, reply) => {
      const submitted = await tenants.deleteTenant(req.params.ref, { cascade: req.query.cascade === true, actor: req.principal.actor });
      // The tenant's tokens were revoked with the submit (with cascade) or deleted with it: refused from now on here.
      forgetTokens();
      if (!submitted) return reply.status(204).send(null);
      const { op, finished } = await maybeWait(deps.engine, submitted, req.query.wait, req.query.timeoutMs);
      return reply.status(finished ? 200 : 202).send({ operation: op });
    });

    app.post('/users', {
      config: { permission: 'system.admin' },
      schema: {
        tags: ['users'], summary: 'Create a user (admin: of no tenant; member or reader: of one) or a service account (kind service)', body: CreateUserBody,
        response: { 201: UserSchema, ...errorResponses('INVALID_NAME', 'NAME_TAKEN', 'TENANT_NOT_FOUND', 'FORBIDDEN') },
      },
    }, async (req, reply) => reply.status(201).send(await tenants.createUser(req.body)));

    app.get('/users', {
      config: { permission: 'system.admin' },
      schema: { tags: ['users'], summary: 'List users (of one tenant with ?tenant=)', querystring: UserListQuery, response: { 200: Page(UserSchema), ...errorResponses('TENANT_NOT_FOUND', 'FORBIDDEN') } },
    }, async (req) => tenants.listUsers(req.query, req.query.tenant));

    app.get('/users/:ref', {
      config: { permission: 'system.admin' },
      schema: { tags: ['users'], summary: 'Show one user', params: RefParams, response: { 200: UserSchema, ...errorResponses('USER_NOT_FOUND', 'FORBIDDEN') } },
    }, async (req) => tenants.getUser(req.params.ref));

    app.patch('/users/:ref', {
      config: { permission: 'system.admin' },
      schema: { tags: ['users'], summary: 'Change a user\'s role (within its kind of place) or description', params: RefParams, body: UpdateUserBody, response: { 200: UserSchema, ...errorResponses('USER_NOT_FOUND', 'FORBIDDEN') } },
    }, async (req) => {
      const u = await tenants.updateUser(req.params.ref, req.body, callerOf(req));
      forgetTokens();
      return u;
    });

    app.delete('/users/:ref', {
      config: { permission: 'system.admin' },
      schema: { tags: ['users'], summary: 'Delete a user and revoke its tokens', params: RefParams, response: { 204: Type.Null(), ...errorResponses('USER_NOT_FOUND', 'FORBIDDEN') } },
    }, async (req, reply) => {
      await tenants.deleteUser(req.params.ref, callerOf(req));
      forgetTokens();
      return reply.status(204).send(null);
    });

    app.post('/tokens', {
      config: { ...SECRET_ANSWER, permission: 'self' },
      schema: {
        tags: ['tokens'], summary: 'Create a named API token for yourself (an admin: for any user); the secret is in this answer only', body: CreateTokenBody,
        response: { 201: CreatedTokenSchema, ...errorResponses('INVALID_NAME', 'NAME_TAKEN', 'USER_NOT_FOUND', 'FORBIDDEN') },
      },
    }, async (req, reply) => reply.status(201).header('cache-control', 'no-store').send(await tenants.createToken(req.body, callerOf(req))));

    app.get('/tokens', {
      config: { permission: 'self' },
      schema: { tags: ['tokens'], summary: 'List your API tokens (an admin: ?user= for anyone\'s); never their secrets', querystring: TokenListQuery, response: { 200: Type.Object({ items: Type.Array(TokenSchema) }), ...errorResponses('USER_NOT_FOUND', 'FORBIDDEN') } },
    }, async (req) => ({ items: await tenants.listTokens(callerOf(req), req.query.user) }));

    app.delete('/tokens/:ref', {
      config: { permission: 'self' },
      schema: { tags: ['tokens'], summary: 'Revoke an API token (by id, or by name among yours or ?user=\'s)', params: RefParams, querystring: TokenListQuery, response: { 204: Type.Null(), ...errorResponses('TOKEN_NOT_FOUND', 'USER_NOT_FOUND', 'FORBIDDEN') } },
    }, async (req, reply) => {
      await tenants.revokeToken(req.params.ref, callerOf(req), req.query.user);
      forgetTokens();
      return reply.status(204).send(null);
    });

    app.get('/whoami', {
      config: { permission: 'self' },
      schema: { tags: ['tokens'], summary: 'Who this token is: user, tenant, role, token', response: { 200: WhoamiSchema, ...errorResponses('FORBIDDEN') } },
    }, async (req) => tenants.whoami(callerOf(req)));
  };
}
