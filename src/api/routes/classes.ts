import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { CreateClassBody, StorageClassSchema, UpdateClassBody } from '../../core/schemas/class-schema.js';
import { Page, PlainListQuery } from '../../core/models.js';
import type { AppDeps } from '../app.js';
import { errorResponses } from '../errors.js';
import { viewerOf } from '../auth.js';
import { RefParams } from '../schemas.js';

/** /v1/classes: storage classes (create, list, show, update, delete). */
export function classRoutes(deps: AppDeps): FastifyPluginAsync {
  const { classes } = deps;
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['classes'];

    app.post('/classes', {
      config: { permission: 'system.admin' },
      schema: {
        tags, summary: 'Create a storage class: required/forbidden tags, required capabilities, zone, kind and placement policy',
        body: CreateClassBody, response: { 201: StorageClassSchema, ...errorResponses('INVALID_NAME', 'NAME_TAKEN', 'VALIDATION_FAILED') },
      },
    }, async (req, reply) => reply.status(201).send(await classes.create(req.body, req.principal.actor, req.idempotencyClaim?.key)));

    app.get('/classes', {
      config: { permission: 'tenant.read' },
      schema: { tags, summary: 'List storage classes (by name; paginated): those its tenant may use, or every one for admins', querystring: PlainListQuery, response: { 200: Page(StorageClassSchema), ...errorResponses() } },
    }, async (req) => classes.list(req.query, viewerOf(req.principal)));

    app.get('/classes/:ref', {
      config: { permission: 'tenant.read' },
      schema: { tags, summary: 'Show one storage class', params: RefParams, response: { 200: StorageClassSchema, ...errorResponses('CLASS_NOT_FOUND') } },
    }, async (req) => classes.get(req.params.ref, viewerOf(req.principal)));

    app.patch('/classes/:ref', {
      config: { permission: 'system.admin' },
      schema: {
        tags, summary: 'Change a storage class (affects later placements only)', params: RefParams, body: UpdateClassBody,
        response: { 200: StorageClassSchema, ...errorResponses('CLASS_NOT_FOUND', 'VALIDATION_FAILED') },
      },
    }, async (req) => classes.update(req.params.ref, req.body, req.principal.actor));

    app.delete('/classes/:ref', {
      config: { permission: 'system.admin' },
      schema: { tags, summary: 'Delete a storage class no volume uses', params: RefParams, response: { 204: Type.Null(), ...errorResponses('CLASS_NOT_FOUND', 'CLASS_IN_USE') } },
    }, async (req, reply) => {
      await classes.delete(req.params.ref, req.principal.actor);
      return reply.status(204).send(null);
    });
  };
}
