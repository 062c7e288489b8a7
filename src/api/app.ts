import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from 'pino';
import type { BackendService } from '../backends/backend-service.js';
import { ErrorBodySchema } from '../core/models.js';
import type { OperationEngine } from '../operations/engine.js';
import type { Store } from '../store/store.js';
import type { VolumeService } from '../volumes/volume-service.js';
import type { AccessService } from '../access/access-service.js';
import type { HostService } from '../hosts/host-service.js';
import type { AttachmentService } from '../attachments/attachment-service.js';
import type { FencingService } from '../attachments/fencing.js';
import type { MigrationService } from '../attachments/migration-service.js';
import type { SnapshotService } from '../snapshots/snapshot-service.js';
import type { ClassService } from '../classes/class-service.js';
import type { EventService } from '../events/event-service.js';
import type { OperationService } from '../operations/operation-service.js';
import type { IdempotencyRepository } from '../store/idempotency-repository.js';
import type { TenantService } from '../tenants/tenant-service.js';
import { Authenticator } from './auth.js';
import { errorHandler } from './errors.js';
import { registerIdempotency } from './idempotency.js';
import { installJsonParser, validatorCompiler } from './request-parsing.js';
import { accessRoutes } from './routes/access.js';
import { attachmentRoutes } from './routes/attachments.js';
import { backendRoutes } from './routes/backends.js';
import { hostRoutes } from './routes/hosts.js';
import { snapshotRoutes } from './routes/snapshots.js';
import { classRoutes } from './routes/classes.js';
import { eventRoutes } from './routes/events.js';
import { operationRoutes } from './routes/operations.js';
import { volumeRoutes } from './routes/volumes.js';

/** Everything the API needs: `startServer` passes the composed ControlPlane (src/compose.ts), and tests pass the same. */
export interface AppDeps {
  readonly store: Store;
  readonly engine: OperationEngine;
  readonly backends: BackendService;
  readonly volumes: VolumeService;
  readonly classes: ClassService;
  readonly hosts: HostService;
  readonly access: AccessService;
  readonly snapshots: SnapshotService;
  readonly attachments: AttachmentService;
  readonly fencing: FencingService;
  readonly migrations: MigrationService;
  readonly operations: OperationService;
  readonly events: EventService;
  readonly tenants: TenantService;
  /** The keys behind `Idempotency-Key`, an HTTP concern with no service of its own. */
  readonly idempotencyKeys: IdempotencyRepository;
  readonly logger: Logger;
  readonly bodyLimitBytes: number;
  readonly version: string;
}

/**
 * What a request log line says about the request. The query string is replaced by `?[redacted]`: it may
 * carry a token (`?token=` from a careless client) or other secrets, and paths say enough.
 */
function requestLogFields(req: FastifyRequest): Record<string, unknown> {
  const q = req.url.indexOf('?');
  return { method: req.method, url: q === -1 ? req.url : `${req.url.slice(0, q)}?[redacted]`, host: req.host, remoteAddress: req.ip, remotePort: req.socket.remotePort };
}

/** Builds the API (not listening): `/v1/*` behind bearer auth, `/openapi.json` and `/healthz` open. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger.child({}, { serializers: { req: requestLogFields } }),
    bodyLimit: deps.bodyLimitBytes,
  }).withTypeProvider<TypeBoxTypeProvider>();
  // Bodies are validated without coercion, query strings with integer-only coercion.
  app.setValidatorCompiler(validatorCompiler);
  // The API speaks JSON only (UTF-8): a text/plain body gets 415, not a confusing "body must be object".
  app.removeContentTypeParser('text/plain');
  installJsonParser(app as unknown as FastifyInstance);

  app.addSchema(ErrorBodySchema);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'Stowage API', version: deps.version, description: 'Storage control plane: backends, volumes, operations, events. Sizes are bytes; errors are { code, message, details }.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _base, _frag, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0] ?? ''}; see /openapi.json`, details: {} });
  });

  app.get('/healthz', { schema: { hide: true } }, async () => ({ ok: true, version: deps.version }));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  const auth = new Authenticator(deps.tenants);
  await app.register(async (v1) => {
    v1.addHook('onRequest', async (req) => {
      req.principal = await auth.authenticate(req);
    });
    registerIdempotency(v1, deps.store, deps.idempotencyKeys);
    await v1.register(backendRoutes(deps));
    await v1.register(volumeRoutes(deps));
    await v1.register(classRoutes(deps));
    await v1.register(hostRoutes(deps));
    await v1.register(accessRoutes(deps));
    await v1.register(snapshotRoutes(deps));
    await v1.register(attachmentRoutes(deps));
    await v1.register(operationRoutes(deps));
    await v1.register(eventRoutes(deps));
  }, { prefix: '/v1' });
  await app.ready();
  return app as unknown as FastifyInstance;
}
