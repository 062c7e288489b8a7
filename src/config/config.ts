import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { StowageError } from '../core/errors.js';

/** Every setting of `stowage serve`, with its unit and default. A config file may set any subset. */
export const ConfigSchema = Type.Object({
  host: Type.String({ default: '127.0.0.1', description: 'address the API listens on' }),
  port: Type.Integer({ default: 8750, minimum: 0, maximum: 65535, description: 'TCP port of the API (0 = any free port)' }),
  dataDir: Type.String({ default: './.stowage', description: 'directory for the SQLite store, the local backend and the secret key' }),
  databaseUrl: Type.String({ default: '', description: 'sqlite:///path.db or postgres://user@host:port/db; empty = sqlite in dataDir' }),
  logLevel: Type.Union([Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug'), Type.Literal('silent')], { default: 'info' }),
  bodyLimitBytes: Type.Integer({ default: 65536, minimum: 1024, description: 'largest request body accepted, in bytes' }),
  probeIntervalMs: Type.Integer({ default: 30000, minimum: 100, description: 'how often every backend is probed, in ms' }),
  reconcileIntervalMs: Type.Integer({ default: 30000, minimum: 100, description: 'how often reconcilers compare desired and actual state, in ms' }),
  reconcileDriverTimeoutMs: Type.Integer({ default: 60000, minimum: 100, description: 'how long the export reconciler waits for one driver call (restore exports, revoke, grant), in ms' }),
  shutdownDrainMs: Type.Integer({ default: 10000, minimum: 0, description: 'on SIGTERM/SIGINT, how long running operation steps and background passes may finish before the store is closed, in ms' }),
  operationLeaseMs: Type.Integer({ default: 10000, minimum: 200, description: 'lease of a worker on an operation; a crashed worker\'s operations resume after it, in ms' }),
  operationPollMs: Type.Integer({ default: 500, minimum: 10, description: 'how often idle workers look for work, in ms' }),
  operationConcurrency: Type.Integer({ default: 4, minimum: 1, description: 'operations run at once by one process' }),
  stepAttempts: Type.Integer({ default: 3, minimum: 1, description: 'tries per operation step for transient backend errors' }),
  retryBaseMs: Type.Integer({ default: 500, minimum: 0, description: 'first retry delay, doubling each time, in ms' }),
  placementAttempts: Type.Integer({ default: 3, minimum: 1, description: 'backends tried for one create before it fails' }),
  defaultBackend: Type.Boolean({ default: true, description: 'create the `local` dir backend under dataDir on first start' }),
  cliConfigPath: Type.String({ default: '', description: 'where the first start writes the admin token for the CLI; empty = ~/.config/stowage/config.json' }),
  agentHeartbeatMs: Type.Integer({ default: 3000, minimum: 100, description: 'how often agents report, in ms (told to them in every answer); keep hostDownAfterMs at 3× or more so one missed report is not a down host' }),
  hostDownAfterMs: Type.Integer({ default: 10000, minimum: 200, description: 'a host whose agent has not reported for this long is down, in ms (the host monitor looks every tenth of it, at most every second: a dead agent\'s host is down within this plus 1 s)' }),
  connectTimeoutMs: Type.Integer({ default: 120000, minimum: 100, description: 'how long an attach waits for the agent to connect the disk, in ms' }),
  disconnectTimeoutMs: Type.Integer({ default: 60000, minimum: 100, description: 'how long a detach waits for the agent before revoking anyway, in ms' }),
  secretKeyFile: Type.String({ default: '', description: 'key that encrypts secrets at rest (CHAP, credentials); empty = <dataDir>/secret.key; replicas sharing a database must share it' }),
  tls: Type.Union([Type.Literal('auto'), Type.Literal('on'), Type.Literal('off')], { default: 'auto', description: 'HTTPS for the API: auto = on unless listening on a loopback address; the certificate is tlsCertFile/tlsKeyFile, or one generated once and kept in the store (clients pin it)' }),
  tlsCertFile: Type.String({ default: '', description: 'PEM certificate (chain) the API serves; empty = a generated self-signed one' }),
  tlsKeyFile: Type.String({ default: '', description: 'PEM private key of tlsCertFile' }),
  nodeHeartbeatMs: Type.Integer({ default: 2000, minimum: 100, description: 'how often the control plane calls each storage node for a heartbeat, in ms' }),
  nodeUnreachableAfterMs: Type.Integer({ default: 10000, minimum: 200, description: 'a node that has not answered a heartbeat for this long is unreachable and its backends offline, in ms' }),
  nodeCallTimeoutMs: Type.Integer({ default: 60000, minimum: 100, description: 'how long one driver call on a node may take before it counts as unanswered, in ms' }),
  nodeEnrollTtlMs: Type.Integer({ default: 3600000, minimum: 60000, description: 'default lifetime of a node or agent enrollment token, in ms' }),
  exportWatchMs: Type.Integer({ default: 2000, minimum: 100, description: 'how often target daemons are checked for lost exports (a restarted tgtd), between full reconciles, in ms' }),
  waitRetryMaxMs: Type.Integer({ default: 5000, minimum: 10, description: 'longest pause between tries of an operation waiting for an unreachable node, in ms' }),
  waitHoldsPerTenant: Type.Integer({ default: 64, minimum: 0, description: 'how many ?wait=true requests of one tenant are held open at once; beyond it they are answered 202 at once (src/api/routes/wait.ts says why)' }),
  waitHoldsTotal: Type.Integer({ default: 1024, minimum: 0, description: 'how many ?wait=true requests are held open at once in all; beyond it they are answered 202 at once' }),
  operationRetentionDays: Type.Integer({ default: 30, minimum: 0, maximum: 36500, description: 'finished (succeeded or failed) operations are deleted this many days after they finished, in days; 0 = kept forever (logged as a warning at start)' }),
  eventRetentionDays: Type.Integer({ default: 90, minimum: 0, maximum: 36500, description: 'events are deleted this many days after they happened, in days; 0 = kept forever (logged as a warning at start)' }),
  retentionArchive: Type.Boolean({ default: true, description: 'before deleting, append the rows as NDJSON to files in <dataDir>/archive/ (0700 dir, 0600 files, fsynced before the delete)' }),
  failpoints: Type.String({ default: '', description: 'test-only crash points, e.g. volume.create/provision:after=kill' }),
});

/** The compiled configuration: nothing optional left, frozen. */
export type Config = Readonly<Static<typeof ConfigSchema>>;

const ENV_KEYS: Readonly<Record<string, keyof Config>> = {
  STOWAGE_HOST: 'host',
  STOWAGE_PORT: 'port',
  STOWAGE_DATA_DIR: 'dataDir',
  STOWAGE_DATABASE_URL: 'databaseUrl',
  STOWAGE_LOG_LEVEL: 'logLevel',
  STOWAGE_PROBE_INTERVAL_MS: 'probeIntervalMs',
  STOWAGE_RECONCILE_INTERVAL_MS: 'reconcileIntervalMs',
  STOWAGE_RECONCILE_DRIVER_TIMEOUT_MS: 'reconcileDriverTimeoutMs',
  STOWAGE_SHUTDOWN_DRAIN_MS: 'shutdownDrainMs',
  STOWAGE_OPERATION_LEASE_MS: 'operationLeaseMs',
  STOWAGE_OPERATION_POLL_MS: 'operationPollMs',
  STOWAGE_STEP_ATTEMPTS: 'stepAttempts',
  STOWAGE_RETRY_BASE_MS: 'retryBaseMs',
  STOWAGE_DEFAULT_BACKEND: 'defaultBackend',
  STOWAGE_CLI_CONFIG: 'cliConfigPath',
  STOWAGE_FAILPOINTS: 'failpoints',
  STOWAGE_SECRET_KEY_FILE: 'secretKeyFile',
  STOWAGE_AGENT_HEARTBEAT_MS: 'agentHeartbeatMs',
  STOWAGE_HOST_DOWN_AFTER_MS: 'hostDownAfterMs',
  STOWAGE_CONNECT_TIMEOUT_MS: 'connectTimeoutMs',
  STOWAGE_DISCONNECT_TIMEOUT_MS: 'disconnectTimeoutMs',
  STOWAGE_TLS: 'tls',
  STOWAGE_TLS_CERT_FILE: 'tlsCertFile',
  STOWAGE_TLS_KEY_FILE: 'tlsKeyFile',
  STOWAGE_NODE_HEARTBEAT_MS: 'nodeHeartbeatMs',
  STOWAGE_NODE_UNREACHABLE_AFTER_MS: 'nodeUnreachableAfterMs',
  STOWAGE_NODE_CALL_TIMEOUT_MS: 'nodeCallTimeoutMs',
  STOWAGE_NODE_ENROLL_TTL_MS: 'nodeEnrollTtlMs',
  STOWAGE_EXPORT_WATCH_MS: 'exportWatchMs',
  STOWAGE_WAIT_RETRY_MAX_MS: 'waitRetryMaxMs',
  STOWAGE_OPERATION_RETENTION_DAYS: 'operationRetentionDays',
  STOWAGE_EVENT_RETENTION_DAYS: 'eventRetentionDays',
  STOWAGE_RETENTION_ARCHIVE: 'retentionArchive',
};

/**
 * Builds the config from defaults, then an optional JSON file, then `STOWAGE_*` environment
 * variables, then explicit overrides (CLI flags). Throws VALIDATION_FAILED naming the bad field.
 */
export function loadConfig(file: string | undefined, env: Readonly<Record<string, string | undefined>>, overrides: Partial<Config> = {}): Config {
  let raw: Record<string, unknown> = {};
  if (file) {
    try {
      raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new StowageError('VALIDATION_FAILED', `cannot read config file ${file}: ${(err as Error).message}`, { file });
    }
  }
  for (const [key, field] of Object.entries(ENV_KEYS)) {
    const v = env[key];
    if (v !== undefined && v !== '') raw[field] = v;
  }
  Object.assign(raw, overrides);
  const converted = Value.Convert(ConfigSchema, Value.Default(ConfigSchema, raw));
  const errors = [...Value.Errors(ConfigSchema, converted)];
  const first = errors[0];
  if (first) {
    throw new StowageError('VALIDATION_FAILED', `invalid setting ${first.path.slice(1) || '(root)'}: ${first.message}`, { path: first.path });
  }
  const cfg = Value.Clean(ConfigSchema, converted) as Static<typeof ConfigSchema>;
  cfg.dataDir = resolve(cfg.dataDir);
  if (!cfg.secretKeyFile) cfg.secretKeyFile = join(cfg.dataDir, 'secret.key');
  if (!cfg.databaseUrl) cfg.databaseUrl = `sqlite://${join(cfg.dataDir, 'stowage.db')}`;
  if (!cfg.cliConfigPath) cfg.cliConfigPath = join(env.XDG_CONFIG_HOME ?? join(env.HOME ?? homedir(), '.config'), 'stowage', 'config.json');
  return Object.freeze(cfg);
}
