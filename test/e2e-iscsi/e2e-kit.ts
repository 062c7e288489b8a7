import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig, type Config } from '../../src/config/config.js';
import { TgtadmClient } from '../../src/drivers/tgt/tgtadm-client.js';
import type { TgtTarget } from '../../src/drivers/tgt/tgtadm-show.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { SpawnCommandRunner, type RunResult } from '../../src/system/command-runner.js';
import { ApiClient, makeTempDir, pollUntil, readToken, removeTempDir, type ApiRequestOptions, type ApiResponse } from '../helpers/server.js';
import type { Lab, LabHost } from '../lab/lab.js';

/**
 * Shared pieces of the end-to-end iSCSI tests: the real control plane (in process, with a debug
 * log file) over a real lab, and initiator-side checks run inside the lab's namespace hosts with
 * libiscsi's tools and qemu-io, using only the connection info the API returned.
 */

/** 1 MiB in bytes. */
export const MiB = 1024 * 1024;

const ANY_EXIT = Array.from({ length: 256 }, (_, i) => i);
const runner = new SpawnCommandRunner();

/** The connection info a grant answers with (CHAP secret included). */
export interface Connection {
  readonly protocol: string;
  readonly portal?: string;
  readonly iqn?: string;
  readonly lun?: number;
  readonly chapUser?: string;
  readonly chapSecret?: string;
  readonly mode: 'rw' | 'ro';
}

/** A grant as the API shows it. */
export interface GrantView {
  readonly id: string;
  readonly hostName: string;
  readonly state: string;
  readonly mode: string;
  readonly stateReason: string | null;
  readonly connection: Connection | null;
}

/** An operation as the API shows it. */
export interface OperationView {
  readonly id: string;
  readonly kind: string;
  readonly state: string;
  readonly targetId: string;
  readonly error: { code: string; message: string } | null;
}

/** A volume as the API shows it. */
export interface VolumeView {
  readonly id: string;
  readonly name: string;
  readonly state: string;
  readonly sizeBytes: number;
  readonly backendName: string | null;
}

/** A backend as the API shows it. */
export interface BackendView {
  readonly name: string;
  readonly state: string;
  readonly stateReason: string | null;
  readonly capabilities: string[];
}

/** An event as the API shows it. */
export interface EventView {
  readonly seq: number;
  readonly actor: string;
  readonly action: string;
  readonly resourceType: string;
  readonly resourceName: string | null;
  readonly message: string;
  readonly details: Record<string, unknown>;
}

/** An API client that keeps every answer's text, so tests can check no secret ever left the server. */
export class RecordingApiClient extends ApiClient {
  readonly answers: string[] = [];

  override async request(method: string, path: string, opts: ApiRequestOptions = {}): Promise<ApiResponse> {
    const r = await super.request(method, path, opts);
    this.answers.push(`${method} ${path} → ${String(r.status)}: ${r.text}`);
    return r;
  }
}

/** The control plane running in this process on a real lab. */
export interface E2eServer {
  readonly server: RunningServer;
  readonly config: Config;
  readonly dataDir: string;
  readonly api: RecordingApiClient;
  /** The pino log file (level debug). */
  readonly logFile: string;
  close(): Promise<void>;
}

/**
 * Starts `startServer` in process with no default backend, a short reconcile interval and a
 * pino logger at debug level writing to a file in its data dir.
 */
export async function startE2eServer(overrides: Partial<Config> = {}): Promise<E2eServer> {
  const dataDir = makeTempDir('stowage-e2e-iscsi-');
  const cliConfigPath = join(dataDir, 'cli.json');
  const logFile = join(dataDir, 'server.log');
  // Reconcile 1 s, poll 20 ms, retry 50 ms so a test's grant/revoke/heal settles in a second (probes and host-down kept out of the way); twins on the shipped timings: test/defaults/tgtd-restart.ts, test/defaults/backend-probe.ts.
  const config = loadConfig(undefined, {}, {
    dataDir, port: 0, cliConfigPath, logLevel: 'debug', probeIntervalMs: 60_000, reconcileIntervalMs: 1000,
    defaultBackend: false, operationPollMs: 20, retryBaseMs: 50, hostDownAfterMs: 3_600_000, ...overrides,
  });
  const logger = pino({ level: 'debug' }, pino.destination({ dest: logFile, sync: true }));
  const server = await startServer(config, logger);
  const token = readToken(cliConfigPath);
  return {
    server, config, dataDir, logFile,
    api: new RecordingApiClient(server.url, token),
    close: async () => {
      await server.stop();
      removeTempDir(dataDir);
    },
  };
}

/** A tgt backend URI on the lab's tgtd over `backing` (a dir:// or btrfs:// URI). */
export function tgtUri(lab: Lab, backing: string): string {
  return `tgt://${lab.portal}?backing=${encodeURIComponent(backing)}&control=${String(lab.tgtdControlPort)}`;
}

/** Registers a backend and waits until its first probe has put it online (enabled). */
export async function registerBackend(api: ApiClient, name: string, driver: string): Promise<BackendView> {
  await api.ok('POST', '/v1/backends', 201, { body: { name, driver } });
  return pollUntil(`backend ${name} to be probed`, async () => {
    const b = await api.ok<BackendView>('GET', `/v1/backends/${name}`, 200);
    if (b.state === 'offline' || b.state === 'error') throw new Error(`backend ${name} is ${b.state}: ${b.stateReason ?? ''}`);
    return b.capabilities.length > 0 ? b : undefined;
  }, 60_000);
}

/** Registers every lab host under its short name with its address and initiator name. */
export async function registerLabHosts(api: ApiClient, lab: Lab): Promise<void> {
  for (const h of lab.hosts) {
    await api.ok('POST', '/v1/hosts', 201, { body: { name: h.name, initiatorName: h.initiatorName, addresses: [h.address] } });
  }
}

/** Creates a volume pinned to `backend` and waits until it is available. */
export async function createVolume(api: ApiClient, name: string, sizeBytes: number, backend: string): Promise<VolumeView> {
  const r = await api.ok<{ volume: VolumeView }>('POST', '/v1/volumes?wait=true', [200, 201], { body: { name, sizeBytes, backend } });
  if (r.volume.state !== 'available') throw new Error(`volume ${name} is ${r.volume.state}`);
  return r.volume;
}

/** Grants `host` access to `volume` and returns the connection info the API answered with. */
export async function grant(api: ApiClient, volume: string, host: string, mode: 'rw' | 'ro' = 'rw'): Promise<Connection> {
  const r = await api.ok<{ grant: GrantView; connection: Connection | null }>('POST', `/v1/volumes/${volume}/grants?wait=true`, 200, { body: { host, mode } });
  if (r.grant.state !== 'active' || r.connection === null) throw new Error(`grant of ${host} on ${volume} is ${r.grant.state} with no connection`);
  return r.connection;
}

/** Revokes `host`'s access to `volume` and waits for the revoke to finish. */
export async function revoke(api: ApiClient, volume: string, host: string): Promise<void> {
  await api.ok('DELETE', `/v1/volumes/${volume}/grants/${host}?wait=true`, 200);
}

/** CHAP credentials as the host logs in with them. */
export interface Login {
  readonly user: string;
  readonly secret: string;
}

/** The CHAP login the API told the host to use (`connection.chapUser` / `chapSecret`). */
export function loginOf(c: Connection): Login {
  if (c.chapUser === undefined || c.chapSecret === undefined) throw new Error('connection info has no CHAP credentials');
  return { user: c.chapUser, secret: c.chapSecret };
}

/** `iscsi://[user%secret@]portal/iqn/lun` from the connection info. */
export function iscsiUrl(c: Connection, login: Login | null = c.chapUser !== undefined ? loginOf(c) : null): string {
  if (c.portal === undefined || c.iqn === undefined || c.lun === undefined) throw new Error(`not iSCSI connection info: ${JSON.stringify({ ...c, chapSecret: undefined })}`);
  return `iscsi://${login ? `${login.user}%${login.secret}@` : ''}${c.portal}/${c.iqn}/${String(c.lun)}`;
}

/**
 * `iscsi-readcapacity16 -s` from inside a host, CHAP through libiscsi's environment variables;
 * `login` null logs in without CHAP. Never throws on a non-zero exit.
 */
export async function readCapacity(lab: Lab, h: LabHost, c: Connection, login: Login | null = loginOf(c)): Promise<RunResult> {
  const { portal, iqn, lun } = c;
  if (portal === undefined || iqn === undefined || lun === undefined) throw new Error('not iSCSI connection info');
  return lab.hostExec(h, 'iscsi-readcapacity16', ['-s', '-i', h.initiatorName, `iscsi://${portal}/${iqn}/${String(lun)}`], {
    okExitCodes: ANY_EXIT, timeoutMs: 60_000,
    ...(login ? { env: { LIBISCSI_CHAP_USERNAME: login.user, LIBISCSI_CHAP_PASSWORD: login.secret }, secrets: [login.secret] } : {}),
  });
}

/** Runs qemu-io commands (`-c`) against the volume from inside a host; `readonly` opens it with -r. */
export async function qemuIo(lab: Lab, h: LabHost, c: Connection, commands: readonly string[], opts: { readonly?: boolean; login?: Login } = {}): Promise<RunResult> {
  const login = opts.login ?? loginOf(c);
  const args = [...(opts.readonly === true ? ['-r'] : []), '-f', 'raw', ...commands.flatMap((cmd) => ['-c', cmd]), iscsiUrl(c, login)];
  return lab.hostExec(h, 'qemu-io', args, { okExitCodes: ANY_EXIT, timeoutMs: 60_000, secrets: [login.secret] });
}

/** True when qemu-io's output says every command went through (no failure, no pattern mismatch). */
export function ioSucceeded(r: RunResult): boolean {
  return r.exitCode === 0 && !/Pattern verification failed|failed|error|Could not open/i.test(r.stdout + r.stderr);
}

/** Writes `pattern` over [offset, offset+length) then reads it back, from inside `h`; throws with qemu-io's output on failure. */
export async function writeAndVerify(lab: Lab, h: LabHost, c: Connection, pattern: number, offset: number, length: number): Promise<void> {
  const p = `0x${pattern.toString(16)}`;
  const r = await qemuIo(lab, h, c, [`write -P ${p} ${String(offset)} ${String(length)}`, `read -P ${p} ${String(offset)} ${String(length)}`]);
  if (!ioSucceeded(r) || !r.stdout.includes(`wrote ${String(length)}/${String(length)} bytes`) || !r.stdout.includes(`read ${String(length)}/${String(length)} bytes`)) {
    throw new Error(`write+read of ${p} from ${h.name} failed (exit ${String(r.exitCode)}): ${r.stdout} ${r.stderr}`);
  }
}

/** True when `h` reads `pattern` over [offset, offset+length) (read-only open). */
export async function readsPattern(lab: Lab, h: LabHost, c: Connection, pattern: number, offset: number, length: number): Promise<boolean> {
  const r = await qemuIo(lab, h, c, [`read -P 0x${pattern.toString(16)} ${String(offset)} ${String(length)}`], { readonly: true });
  return ioSucceeded(r) && r.stdout.includes(`read ${String(length)}/${String(length)} bytes`);
}

/** The lab tgtd as tgtadm shows it (parsed by the driver's own parser). */
export async function showTargets(lab: Lab): Promise<TgtTarget[]> {
  return new TgtadmClient(runner, lab.tgtdControlPort).showTargets(AbortSignal.timeout(30_000));
}

/** The lab tgtd's CHAP account names. */
export async function showAccounts(lab: Lab): Promise<string[]> {
  return new TgtadmClient(runner, lab.tgtdControlPort).showAccounts(AbortSignal.timeout(30_000));
}

/** Number of sessions on target `iqn` that came from `address`. */
export async function sessionsFrom(lab: Lab, iqn: string, address: string): Promise<number> {
  const t = (await showTargets(lab)).find((x) => x.iqn === iqn);
  return (t?.sessions ?? []).filter((s) => s.connections.some((c) => c.address === address)).length;
}

/** An interactive qemu-io inside `h` holding a session open while its stdin stays open. */
export function openSession(h: LabHost, c: Connection): ChildProcess {
  return spawn('ip', ['netns', 'exec', h.netns, 'qemu-io', '-f', 'raw', iscsiUrl(c)], { stdio: ['pipe', 'ignore', 'ignore'] });
}

/** Ends a process this test started (by its PID only); ignores one already gone. */
export function killChild(child: ChildProcess): void {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}

/** Every item of a paginated list endpoint (`items` + `nextCursor`). */
export async function listAll<T>(api: ApiClient, path: string): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const sep = path.includes('?') ? '&' : '?';
    const r: { items: T[]; nextCursor: string | null } = await api.ok('GET', `${path}${sep}limit=1000${cursor !== null ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, 200);
    out.push(...r.items);
    if (r.nextCursor === null || r.items.length === 0) return out;
    cursor = r.nextCursor;
  }
  throw new Error(`${path}: too many pages`);
}

/** Makes a directory (for dir:// backends, which expect theirs to exist). */
export function ensureDir(path: string): string {
  mkdirSync(path, { recursive: true });
  return path;
}

/** Removes a temp dir made for a test (re-exported for afterAll blocks). */
export { removeTempDir };
