import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { buildApp } from './api/app.js';
import { isLoopback, resolveApiCertificate } from './api/api-certificate.js';
import type { TlsIdentity } from './system/tls-identity.js';
import type { BackendService } from './backends/backend-service.js';
import { composeControlPlane, type ControlPlane } from './compose.js';
import type { Config } from './config/config.js';
import type { OperationEngine } from './operations/engine.js';
import type { DriverCache } from './backends/driver-cache.js';
import { openStore, type Store } from './store/store.js';
import { ensurePrivateDir } from './system/private-files.js';
import { backgroundLoops } from './reconcile/background-loops.js';
import { settlesWithin, type BackgroundLoop } from './system/background-loop.js';

/** Every driver this build knows, by URI scheme (defined with the composition root). */
export { DRIVER_FACTORIES } from './compose.js';

/** The package version, for /healthz and OpenAPI. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** A running control plane: its URL and how to stop it. */
export interface RunningServer {
  readonly url: string;
  readonly store: Store;
  /** The Fastify app itself, for in-process `inject()` tests. */
  readonly app: FastifyInstance;
  stop(): Promise<void>;
}

/**
 * Starts `stowage serve`: opens (and migrates) the store, bootstraps the default tenant, the admin
 * token and the `local` backend on first start, then serves the API and runs workers and probes.
 */
export async function startServer(config: Config, logger: Logger = pino({ level: config.logLevel })): Promise<RunningServer> {
  ensurePrivateDir(config.dataDir);
  const store = await openStore(config.databaseUrl);
  const plane = await composeControlPlane(config, store, logger);
  const { engine, drivers, backends } = plane;

  const cert = await resolveApiCertificate(config, plane.identities);
  if (!cert && !isLoopback(config.host)) {
    logger.warn({ host: config.host }, 'TLS IS OFF on a non-loopback address (tls: "off"): API tokens, agent credentials and CHAP secrets cross the network in clear; use tls "auto" or "on"');
  }
  plane.retention.warnIfUnbounded();
  await bootstrap(plane, cert);
  const app = await buildApp({ ...plane, idempotencyKeys: plane.repos.idempotency, bodyLimitBytes: config.bodyLimitBytes, version: packageVersion() }, { https: cert ? { key: cert.keyPem, cert: cert.certPem } : null });
  const address = await app.listen({ host: config.host, port: config.port });
  if (cert) logger.info({ url: address, fingerprint: cert.fingerprint, expiresAt: cert.expiresAt }, 'the API serves HTTPS; clients pin this certificate');
  await plane.staleStates.sweep();
  engine.start();
  const loops = backgroundLoops({ backends, exports: plane.exports, exportWatch: plane.exportWatch, staleStates: plane.staleStates, claims: plane.claimSweeper, hostMonitor: plane.hostMonitor, nodeMonitor: plane.nodeMonitor, retention: plane.retention }, config, plane.failpoints, logger);
  for (const l of loops) l.start();
  logger.info({ url: address, store: store.dialect, dataDir: config.dataDir }, 'stowage is serving');

  let stopping: Promise<void> | null = null;
  return {
    url: address,
    store,
    app,
    stop: () => {
      stopping ??= drainAndClose({ app, engine, loops, backends, drivers, store, nodes: plane }, config.shutdownDrainMs, logger);
      return stopping;
    },
  };
}

/** What a graceful stop takes apart, outermost first. */
interface Running {
  readonly app: FastifyInstance;
  readonly engine: OperationEngine;
  readonly loops: readonly BackgroundLoop[];
  readonly backends: Pick<BackendService, 'stopBackground'>;
  readonly drivers: DriverCache;
  readonly store: Store;
  readonly nodes: Pick<ControlPlane, 'nodeMonitor' | 'nodeChannels'>;
}

/**
 * Stops taking work (the listener closes, the engine claims nothing new, no loop starts a pass),
 * lets running operation steps, background passes and requests finish for up to `drainMs` in total,
 * then closes the store: nothing that could still touch it is left running unless it outlived the
 * deadline and its abort. An operation cut short resumes after its lease, here or on a replica.
 */
async function drainAndClose(r: Running, drainMs: number, logger: Logger): Promise<void> {
  const deadline = Date.now() + drainMs;
  const left = (): number => Math.max(0, deadline - Date.now());
  const closingApp = r.app.close();
  const [, ...passes] = await Promise.all([r.engine.stop(left()), ...r.loops.map((l) => l.stop(left()))]);
  if (!(await settlesWithin(r.backends.stopBackground(), left()))) logger.warn('the background probe of filesystem sharers did not end before the store was closed');
  for (const p of passes) if (!p.drained) logger.warn({ loop: p.name }, 'a background pass did not end before the store was closed');
  if (!(await settlesWithin(closingApp, left()))) {
    logger.warn({ drainMs }, 'requests still open at the drain deadline; closing their connections');
    r.app.server.closeAllConnections();
    await settlesWithin(closingApp, 1000);
  }
  await settlesWithin(r.nodes.nodeMonitor.close(), left());
  await r.drivers.closeAll();
  r.nodes.nodeChannels.closeAll();
  await r.store.close();
  logger.info({ awaited: passes.filter((p) => p.wasRunning).map((p) => p.name) }, 'stopped; the store is closed');
}

/**
 * First start only: the default tenant, the admin token (printed once, with the API URL and its
 * certificate's fingerprint, and written with the pin to the CLI config) and the `local` backend.
 */
async function bootstrap(plane: ControlPlane, cert: TlsIdentity | null): Promise<void> {
  const { config, backends, logger } = plane;
  await plane.tenants.ensureDefaultTenant();
  const token = await plane.tenants.issueFirstAdminToken();
  if (token !== null) {
    const url = `${cert ? 'https' : 'http'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`;
    writeCliConfig(config.cliConfigPath, { url, token, ...(cert ? { apiFingerprint: cert.fingerprint, apiCertPem: cert.certPem } : {}) });
    // Printed once, on purpose: this is the only time the token exists outside its hash.
    const pin = cert ? `API ${url}, certificate ${cert.fingerprint} (pinned in that file; give it to \`stowage login --fingerprint\` elsewhere)\n` : `API ${url}\n`;
    process.stdout.write(`\n${pin}Admin API token (shown once; also written to ${config.cliConfigPath}):\n  ${token}\n\n`);
  }
  if (config.defaultBackend && !(await backends.any())) {
    await createLocalBackend(backends, config, logger);
  }
}

async function createLocalBackend(backends: BackendService, config: Config, logger: ControlPlane['logger']): Promise<void> {
  const dir = join(config.dataDir, 'volumes');
  ensurePrivateDir(dir);
  const { backend } = await backends.create({ name: 'local', driver: `dir://${dir}` }, 'system');
  logger.info({ backend: backend.name, state: backend.state }, 'created the default local backend');
}

/** Writes the CLI's config (API URL, token and, for HTTPS, the pinned certificate) readable only by this user. */
export function writeCliConfig(path: string, cfg: { url: string; token: string; apiFingerprint?: string; apiCertPem?: string }): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
}
