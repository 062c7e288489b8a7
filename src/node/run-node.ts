import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { isLoopback } from '../api/api-certificate.js';
import { parseEnrollmentToken } from '../core/enrollment-token.js';
import { StowageError, isErrorCode } from '../core/errors.js';
import type { NodeEnrolled } from '../core/schemas/node-schema.js';
import { DRIVER_FACTORIES } from '../drivers/driver-factories.js';
import { SpawnCommandRunner, type CommandRunner } from '../system/command-runner.js';
import { parseHostPort } from '../system/host-port.js';
import { fetchCertificate } from '../system/pinned-fetch.js';
import { PRIVATE_FILE_MODE, ensurePrivateDir } from '../system/private-files.js';
import { readCapped } from '../system/read-capped.js';
import { fingerprintOf, generateIdentity, loadIdentity, pinnedClientTls, saveIdentity, type TlsIdentity } from '../system/tls-identity.js';
import { Failpoints } from '../operations/failpoints.js';
import { callRoutes } from './call-routes.js';
import { dataRoutes } from './data-routes.js';
import { NodeDriverHost } from './driver-host.js';
import { startNodeServer, type RunningNode } from './node-server.js';

/** What `stowage node run` is started with. */
export interface RunNodeOptions {
  /** This node's name in Stowage (as `stowage node create` registered it). */
  readonly name: string;
  /** host:port to listen on (the address the control plane was told). */
  readonly listen: string;
  /** The control plane's API URL (https://…; http:// only on loopback, for a `plain` token). */
  readonly apiUrl: string;
  /** A one-time enrollment token: enroll (or re-enroll with a new key) before serving. Never logged. */
  readonly enrollToken?: string;
  /** Where the node's key, certificate and its control plane's certificate are kept (0700). */
  readonly stateDir: string;
  readonly logLevel?: string;
  /**
   * Test-only crash points (env STOWAGE_NODE_FAILPOINTS), e.g. `driver.createVolume:before=kill,access.grant:after=kill`:
   * see nodeFailpoints. Absent or empty: none, and no cost.
   */
  readonly failpoints?: string;
}

/** The default state dir of a storage node. */
export const DEFAULT_NODE_STATE_DIR = '/var/lib/stowage-node';

const ENROLL_TIMEOUT_MS = 30_000;
const ANSWER_CAP_BYTES = 1024 * 1024;

/** What the node keeps between runs: its identity and the one client certificate it accepts. */
export interface NodeCredentials {
  readonly identity: TlsIdentity;
  readonly controlPlaneCertPem: string;
}

const identityDir = (stateDir: string): string => join(stateDir, 'identity');
const controlPlaneFile = (stateDir: string): string => join(stateDir, 'control-plane.pem');

/** Loads what an earlier enrollment saved, or undefined when this node never enrolled. */
export function loadNodeCredentials(stateDir: string): NodeCredentials | undefined {
  const identity = loadIdentity(identityDir(stateDir));
  if (!identity) return undefined;
  try {
    return { identity, controlPlaneCertPem: readFileSync(controlPlaneFile(stateDir), 'utf8') };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Saves the node's identity and its control plane's certificate (dirs 0700, files 0600). */
export function saveNodeCredentials(stateDir: string, c: NodeCredentials): void {
  ensurePrivateDir(stateDir);
  saveIdentity(identityDir(stateDir), c.identity);
  writeFileSync(controlPlaneFile(stateDir), c.controlPlaneCertPem, { mode: PRIVATE_FILE_MODE });
}

/** Splits `host:port` / `[v6]:port` for listening. */
export function parseListen(listen: string): { host: string; port: number } {
  const hp = parseHostPort(listen);
  if (!hp) throw new StowageError('VALIDATION_FAILED', `--listen "${listen}" is not host:port`, { listen });
  return hp;
}

/**
 * Enrolls node `name` with `token`: checks that the API at `apiUrl` shows the certificate the token
 * pins (a bare handshake first: the token is never sent to any other server), then sends the token
 * and `identity`'s certificate over HTTPS pinned to it, and answers the control plane's client
 * certificate. A `plain` token enrolls only over http on loopback.
 */
export async function enrollNode(name: string, token: string, apiUrl: string, identity: TlsIdentity): Promise<NodeEnrolled> {
  const parsed = parseEnrollmentToken(token);
  if (parsed.kind !== 'node') throw new StowageError('ENROLLMENT_INVALID', 'that is an agent enrollment token; a node needs one from `stowage node create` or `stowage node rekey`', {});
  let url: URL;
  try {
    url = new URL(`v1/nodes/${encodeURIComponent(name)}/enroll`, apiUrl.endsWith('/') ? apiUrl : `${apiUrl}/`);
  } catch {
    throw new StowageError('VALIDATION_FAILED', `--api "${apiUrl}" is not a URL`, {});
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const body = JSON.stringify({ token, certPem: identity.certPem });
  if (parsed.apiFingerprint === null) {
    if (url.protocol !== 'http:' || !isLoopback(host)) {
      throw new StowageError('ENROLLMENT_INVALID', 'this token is for a plain-HTTP API on loopback; against any other API use a token the control plane made with TLS on', {});
    }
    return post(http.request(url, { method: 'POST', headers: jsonHeaders(body), timeout: ENROLL_TIMEOUT_MS }), body);
  }
  if (url.protocol !== 'https:') throw new StowageError('ENROLLMENT_INVALID', `this token pins the API's TLS certificate: use an https:// --api URL, not ${url.protocol}//`, {});
  const port = url.port ? Number(url.port) : 443;
  const { certPem: shown, fingerprint: seen } = await fetchCertificate(host, port, ENROLL_TIMEOUT_MS);
  if (seen !== parsed.apiFingerprint) {
    throw new StowageError('ENROLLMENT_INVALID', `the API at ${url.host} shows the certificate ${seen}, not the ${parsed.apiFingerprint} the token pins: not enrolling (the token was not sent)`, { seen, pinned: parsed.apiFingerprint });
  }
  return post(https.request(url, { method: 'POST', headers: jsonHeaders(body), timeout: ENROLL_TIMEOUT_MS, ...pinnedClientTls(shown) }), body);
}

function jsonHeaders(body: string): Record<string, string> {
  return { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
}

function post(req: http.ClientRequest, body: string): Promise<NodeEnrolled> {
  return new Promise((resolve, reject) => {
    req.on('timeout', () => { req.destroy(new Error(`the API did not answer the enrollment within ${ENROLL_TIMEOUT_MS} ms`)); });
    req.on('error', reject);
    req.on('response', (res) => {
      readCapped(res as AsyncIterable<Buffer>, ANSWER_CAP_BYTES, () => new Error('the enrollment answer is too large')).then((answer) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(answer.toString('utf8'));
        } catch {
          reject(new StowageError('INTERNAL', `the API answered the enrollment with ${res.statusCode ?? 0} and no JSON`, {}));
          return;
        }
        if (res.statusCode !== 200) {
          const e = parsed as { code?: unknown; message?: unknown };
          reject(new StowageError(isErrorCode(e.code) ? e.code : 'INTERNAL', typeof e.message === 'string' ? e.message : `enrollment answered ${res.statusCode ?? 0}`, {}));
          return;
        }
        const a = parsed as Partial<NodeEnrolled>;
        if (typeof a.controlPlaneCertPem !== 'string' || typeof a.node !== 'string') { reject(new StowageError('INTERNAL', 'the enrollment answer has no control-plane certificate', {})); return; }
        resolve({ node: a.node, controlPlaneCertPem: a.controlPlaneCertPem });
      }, reject);
    });
    req.end(body);
  });
}

/**
 * The node's credentials: with a token, a new identity enrolled with the control plane (saved only
 * once the control plane accepted it: a refused enrollment leaves the state dir as it was);
 * without, what an earlier enrollment saved.
 */
export async function nodeCredentials(o: RunNodeOptions, runner: CommandRunner, logger: Logger): Promise<NodeCredentials> {
  if (o.enrollToken === undefined) {
    const saved = loadNodeCredentials(o.stateDir);
    if (!saved) throw new StowageError('ENROLLMENT_INVALID', `node ${o.name} has not enrolled (nothing in ${o.stateDir}): run it once with --enroll-file, STOWAGE_ENROLL_TOKEN or --enroll`, {});
    return saved;
  }
  const listen = parseListen(o.listen);
  const identity = await generateIdentity(runner, `stowage-node-${o.name}`, [listen.host]);
  logger.info({ node: o.name, api: o.apiUrl, key: identity.fingerprint }, 'enrolling');
  const answer = await enrollNode(o.name, o.enrollToken, o.apiUrl, identity);
  const creds = { identity, controlPlaneCertPem: answer.controlPlaneCertPem };
  saveNodeCredentials(o.stateDir, creds);
  logger.info({ node: o.name, controlPlane: fingerprintOf(answer.controlPlaneCertPem) }, 'enrolled; the control plane\'s key is pinned');
  return creds;
}

/** Enrolls if asked, then starts the node's server; the caller closes it. */
export async function startNode(o: RunNodeOptions, logger: Logger): Promise<{ node: RunningNode; host: NodeDriverHost }> {
  const runner = new SpawnCommandRunner();
  const creds = await nodeCredentials(o, runner, logger);
  const host = new NodeDriverHost(DRIVER_FACTORIES, { runner, dataDir: o.stateDir });
  const failpoints = nodeFailpoints(o.failpoints ?? '', o.stateDir);
  const node = await startNodeServer({
    name: o.name, listen: parseListen(o.listen), identity: creds.identity, controlPlaneCertPem: creds.controlPlaneCertPem,
    dataDir: o.stateDir, runner, factories: DRIVER_FACTORIES, logger, version: packageVersion(),
  }, { ...callRoutes(host, logger, failpoints), ...dataRoutes(host, failpoints) });
  return { node, host };
}

/**
 * The node's failpoints (recovery tests only): `<target>.<method>:before|after=kill|hang`, where
 * `before` is on receiving that call before its driver method runs, `after` once the method
 * returned but before the answer goes out (the effect done, the answer lost); `kill` is a
 * SIGKILL of the node itself, `hang` never answers (for killing the control plane meanwhile).
 * Each point reached is appended to `<stateDir>/failpoints.reached` first. The parsing is the
 * control plane's (`hang` is its `pause`); an empty spec enables nothing.
 */
export function nodeFailpoints(spec: string, stateDir: string): Failpoints {
  if (spec.trim() === '') return Failpoints.none();
  return new Failpoints(spec.replace(/=hang\b/g, '=pause'), nodeFailpointsReachedPath(stateDir));
}

/** Where a node's failpoints record the points reached (one name a line). */
export function nodeFailpointsReachedPath(stateDir: string): string {
  return join(stateDir, 'failpoints.reached');
}

/** `stowage node run`: enrolls if asked, serves until SIGTERM/SIGINT, then closes cleanly. */
export async function runNode(o: RunNodeOptions): Promise<void> {
  const logger = pino({ level: o.logLevel ?? 'info' });
  const { node, host } = await startNode(o, logger);
  logger.info({ node: o.name, address: node.address, bootId: node.bootId }, 'stowage node running');
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      logger.info({ signal }, 'stowage node stopping');
      resolve();
    };
    process.once('SIGTERM', () => { stop('SIGTERM'); });
    process.once('SIGINT', () => { stop('SIGINT'); });
  });
  // A stop never hangs: the server and the drivers get a bounded time each, then the process ends
  // even if a socket or a timer lingers (a supervisor's SIGTERM must not need a SIGKILL after it).
  for (const [what, close] of [['server', () => node.close()], ['drivers', () => host.closeAll()]] as const) {
    if (!(await settlesWithin(close(), STOP_GRACE_MS))) logger.warn({ part: what, graceMs: STOP_GRACE_MS }, 'did not close in time; stopping anyway');
  }
  logger.info('stowage node stopped');
  setTimeout(() => { process.exit(0); }, 500).unref();
}

/** How long a stopping node waits for its server, then for its drivers, to close. */
const STOP_GRACE_MS = 5000;

/** True when `p` settles within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => { timer = setTimeout(() => { resolve(false); }, ms); });
  try {
    return await Promise.race([p.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}
