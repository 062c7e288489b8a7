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
import type { QuotaService } from '../quotas/quota-service.js';
import type { AgentCredentialService } from '../hosts/agent-credentials.js';
import type { NodeService } from '../nodes/node-service.js';
import type { RetentionSweeper } from '../reconcile/retention-sweeper.js';
import { Authenticator, RoutePermissionCheck, authorize, refuseTenantOverride } from './auth.js';
import { StowageError } from '../core/errors.js';
import { AuthFailureLimiter } from './auth-limiter.js';
import { errorHandler } from './errors.js';
import { registerIdempotency } from './idempotency.js';
import { installJsonParser, validatorCompiler } from './request-parsing.js';
import { accessRoutes } from './routes/access.js';
import { attachmentRoutes } from './routes/attachments.js';
import { backendRoutes } from './routes/backends.js';
import { agentEnrollmentRoutes, hostRoutes } from './routes/hosts.js';
import { snapshotRoutes } from './routes/snapshots.js';
import { classRoutes } from './routes/classes.js';
import { eventRoutes } from './routes/events.js';
import { operationRoutes } from './routes/operations.js';
import { volumeRoutes } from './routes/volumes.js';
import { nodeEnrollRoutes, nodeRoutes } from './routes/nodes.js';
import { tenantRoutes } from './routes/tenants.js';
import { quotaRoutes } from './routes/quotas.js';
import { systemRoutes } from './routes/system.js';
import { DEFAULT_WAIT_HOLD_CAPS, registerWaitHoldCaps, type WaitHoldCaps } from './routes/wait.js';

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
  readonly quotas: QuotaService;
  /** Caps on held `?wait=true` requests (default DEFAULT_WAIT_HOLD_CAPS). */
  readonly waitHolds?: WaitHoldCaps;
  /** Host agents' enrollment tokens and credentials. */
  readonly agentCredentials: AgentCredentialService;
  readonly nodes: NodeService;
  /** Retention of finished operations and events (GET/POST /v1/system/retention). */
  readonly retention: RetentionSweeper;
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

/**
 * Builds the API (not listening): `/v1/*` behind bearer auth, `/openapi.json` and `/healthz` open.
 * With `https` it serves TLS (the server's certificate from resolveApiCertificate).
 */
export async function buildApp(deps: AppDeps, opts: { https?: { key: string; cert: string } | null } = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger.child({}, { serializers: { req: requestLogFields } }),
    bodyLimit: deps.bodyLimitBytes,
    ...(opts.https ? { https: { key: opts.https.key, cert: opts.https.cert, minVersion: 'TLSv1.2' as const } } : {}),
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

  // Every route declares its permission (config.permission); one without is refused here, at startup.
  const permissionCheck = new RoutePermissionCheck();
  app.addHook('onRoute', (route) => { permissionCheck.record(route); });

  app.get('/healthz', { config: { permission: 'public' }, schema: { hide: true } }, async () => ({ ok: true, version: deps.version }));
  app.get('/openapi.json', { config: { permission: 'public' }, schema: { hide: true } }, async () => app.swagger());

  // One count of failed authentications per source, for bearer tokens and enrollment tokens alike.
  const limiter = new AuthFailureLimiter();
  const auth = new Authenticator(deps.tenants, limiter);
  await app.register(async (v1) => {
    v1.addHook('onRoute', (route) => { permissionCheck.markAuthenticated(route); });
    // onRequest: authorization runs before the body is parsed and validated (a forbidden role gets 403 whatever it sends).
    v1.addHook('onRequest', async (req) => {
      req.principal = await auth.authenticate(req);
      authorize(req, req.principal);
      refuseTenantOverride(req);
    });
    registerWaitHoldCaps(v1, deps.waitHolds ?? DEFAULT_WAIT_HOLD_CAPS);
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
    await v1.register(nodeRoutes(deps));
    await v1.register(tenantRoutes(deps, () => { auth.forgetAll(); }));
    await v1.register(quotaRoutes(deps));
    await v1.register(systemRoutes(deps));
  }, { prefix: '/v1' });
  await app.register(async (enroll) => {
    enroll.addHook('onRequest', async (req) => { limiter.check(req.ip); });
    enroll.addHook('onError', async (req, _reply, err) => { if (err instanceof StowageError && err.code === 'ENROLLMENT_INVALID') limiter.failed(req.ip); });
    await enroll.register(agentEnrollmentRoutes(deps));
    // Authenticated by the one-time enrollment token in the body alone: the node holds no API token.
    await enroll.register(nodeEnrollRoutes(deps));
  }, { prefix: '/v1' });
  await app.ready();
  // After ready: every plugin has loaded, so every route has been seen.
  try {
    permissionCheck.verify();
  } catch (e) {
    await app.close();
    throw e;
  }
  return app as unknown as FastifyInstance;
}
