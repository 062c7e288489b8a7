import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { QemuVm } from '../../src/agent/hypervisor/qemu-vm.js';
import { SpawnCommandRunner, type RunResult } from '../../src/system/command-runner.js';
import { showTargets, type Connection } from '../e2e-iscsi/e2e-kit.js';
import { ApiClient, REPO_ROOT, listensOn, pollUntil, readToken, sleep } from '../helpers/server.js';
import type { Lab, LabHost } from '../lab/lab.js';
import { freeTcpPort } from '../lab/ports.js';

/**
 * Pieces of the end-to-end host tests: the real built control plane spawned on the lab bridge,
 * real `stowage agent` processes and real QEMU VMs inside the lab's namespace hosts, and checks
 * of what tgtd and QEMU really have. Every process is started by the test and killed by its PID.
 */

/** 1 MiB in bytes. */
export const MiB = 1024 * 1024;

const ANY_EXIT = Array.from({ length: 256 }, (_, i) => i);
const runner = new SpawnCommandRunner();

/** An attachment as the API shows it. */
export interface AttachmentView {
  readonly id: string;
  readonly volumeId: string;
  readonly volumeName: string;
  readonly hostName: string;
  readonly instance: string;
  readonly mode: string;
  readonly state: string;
  readonly stateReason: string | null;
  readonly deviceId: string | null;
  readonly migrationId: string | null;
}

/** A migration as the API shows it. */
export interface MigrationView {
  readonly id: string;
  readonly instance: string;
  readonly fromHost: string;
  readonly toHost: string;
  readonly state: string;
  readonly stateReason: string | null;
}

/** An operation as the API shows it. */
export interface OperationView {
  readonly id: string;
  readonly kind: string;
  readonly state: string;
  readonly error: { code: string; message: string } | null;
}

/** A grant as the API shows it. */
export interface GrantView {
  readonly hostName: string;
  readonly state: string;
  readonly mode: string;
}

// ---- the control plane: `node dist/main.js serve` listening on the lab bridge ----

/** A control plane process this test started. */
export interface ControlPlane {
  readonly pid: number;
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly api: ApiClient;
  readonly token: string;
  /** True once the process exited. */
  hasExited(): boolean;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  /** Everything the process printed (for failure messages). */
  output(): string;
  /** kill -9 of this PID only; waits for the exit. */
  kill9(): Promise<void>;
}

/** Options of a control plane start. */
export interface ControlPlaneOptions {
  readonly lab: Lab;
  readonly dataDir: string;
  /** Port to listen on (keep it across restarts so agents find the server again); default a free one. */
  readonly port?: number;
  /** STOWAGE_FAILPOINTS. */
  readonly failpoints?: string;
  /** More STOWAGE_* variables. */
  readonly env?: Readonly<Record<string, string>>;
}

/** The server timings the host tests use: fast heartbeats, a host is down after 3 s of silence. */
export const HOST_TEST_ENV: Readonly<Record<string, string>> = {
  // Beats every 500 ms and down after 3 s so down/fence/evacuate tests run in seconds, not minutes; twin on the shipped timings: test/defaults/host-down.ts.
  STOWAGE_AGENT_HEARTBEAT_MS: '500',
  STOWAGE_HOST_DOWN_AFTER_MS: '3000',
  STOWAGE_CONNECT_TIMEOUT_MS: '60000',
  STOWAGE_DISCONNECT_TIMEOUT_MS: '15000',
};

/**
 * Spawns the built server (`node dist/main.js serve`) listening on the lab bridge address (so the
 * agents inside the namespaces reach it) and waits for /healthz. Without `failpoints` it must come up.
 * Without `port` it takes a free one; the server cannot listen on port 0 (its URL in the CLI config
 * names the port), so when another process took that port between the probe and the listen, it
 * retries on a new one.
 */
export async function startControlPlane(o: ControlPlaneOptions): Promise<ControlPlane> {
  mkdirSync(o.dataDir, { recursive: true });
  if (o.port !== undefined) return launchControlPlane(o, o.port);
  const problems: string[] = [];
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      return await launchControlPlane(o, await freeTcpPort(o.lab.bridgeAddress));
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      problems.push(message);
      if (!message.includes(PORT_TAKEN)) break;
    }
  }
  throw new Error(`stowage serve did not start:\n${problems.join('\n---\n')}`);
}

/** Marks a start that failed only because the port was taken (then another port is tried). */
const PORT_TAKEN = 'the port was taken';

async function launchControlPlane(o: ControlPlaneOptions, port: number): Promise<ControlPlane> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: o.dataDir,
    STOWAGE_DATA_DIR: o.dataDir,
    STOWAGE_HOST: o.lab.bridgeAddress,
    STOWAGE_PORT: String(port),
    STOWAGE_CLI_CONFIG: join(o.dataDir, 'cli.json'),
    STOWAGE_LOG_LEVEL: 'warn',
    STOWAGE_DEFAULT_BACKEND: 'false',
    // The lab bridge is not loopback, so tls auto would serve HTTPS; this kit's clients speak plain
    // HTTP (TLS and pinning: test/cli/tls-pinning.test.ts). Agents still enroll (enrollAgent below).
    STOWAGE_TLS: 'off',
    // Lease 1 s, poll 50 ms, reconcile 1 s, retry 50 ms so crash and re-export cases heal in seconds; twins on the shipped timings: test/defaults/replica-lease.ts, test/defaults/tgtd-restart.ts.
    STOWAGE_OPERATION_LEASE_MS: '1000',
    STOWAGE_OPERATION_POLL_MS: '50',
    STOWAGE_PROBE_INTERVAL_MS: '600000',
    STOWAGE_RECONCILE_INTERVAL_MS: '1000',
    STOWAGE_RETRY_BASE_MS: '50',
    ...HOST_TEST_ENV,
    ...(o.failpoints !== undefined ? { STOWAGE_FAILPOINTS: o.failpoints } : {}),
    ...(o.env ?? {}),
  };
  const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'main.js'), 'serve'], { cwd: o.dataDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not spawn node dist/main.js serve');
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
  let done = false;
  const exited = new Promise<void>((res) => child.once('exit', () => { done = true; res(); }));
  const url = `http://${o.lab.bridgeAddress}:${String(port)}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (done) throw new Error(`stowage serve exited at start${/EADDRINUSE/.test(out) ? ` (${PORT_TAKEN})` : ''}:\n${out}`);
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      // Only our own server's answer counts: another process may hold the port.
      if (res.ok && listensOn(pid, String(port))) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      throw new Error(`stowage serve did not answer on ${url}:\n${out}`);
    }
    await sleep(50);
  }
  const token = await pollUntil('the admin token', () => Promise.resolve(existsSync(join(o.dataDir, 'cli.json')) ? readToken(join(o.dataDir, 'cli.json')) : undefined), 10_000);
  const api = new ApiClient(url, token);
  // Agents may only report for registered hosts; a restart on the same data dir finds them there.
  for (const h of o.lab.hosts) await api.ok('POST', '/v1/hosts', [201, 409], { body: { name: h.name, addresses: [h.address] } });
  return {
    pid, url, port, dataDir: o.dataDir, token, api, exited,
    hasExited: () => done,
    output: () => out,
    kill9: async () => {
      if (!done) process.kill(pid, 'SIGKILL');
      await exited;
    },
  };
}

// ---- the host agent inside a namespace ----

/** A `stowage agent` process running inside a lab host. */
export interface AgentProcess {
  readonly pid: number;
  readonly host: LabHost;
  readonly logPath: string;
  alive(): boolean;
  /** kill -9 of this PID; waits for the exit. */
  kill9(): Promise<void>;
}

/**
 * The agent flags that enroll `host`'s agent as a user does: `stowage host enroll` (the built CLI,
 * with the admin token in its environment) prints a one-time token, written to a 0600 file for
 * `--enroll-file` (never argv); the agent keeps its own credential in `--state-dir`. Once that dir
 * holds a credential (a restarted agent) no token is made: the agent uses the one it has.
 */
export function enrollAgent(o: { host: LabHost; apiUrl: string; token: string; logDir: string }): string[] {
  const stateDir = join(o.logDir, `agent-state-${o.host.name}`);
  if (existsSync(join(stateDir, 'agent.json'))) return ['--state-dir', stateDir];
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'stowage.js'), 'host', 'enroll', o.host.name, '-o', 'json'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: o.logDir, STOWAGE_URL: o.apiUrl, STOWAGE_TOKEN: o.token }, encoding: 'utf8', timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`stowage host enroll ${o.host.name} failed: ${r.stderr}`);
  const tokenFile = join(o.logDir, `agent-${o.host.name}.enroll`);
  writeFileSync(tokenFile, (JSON.parse(r.stdout) as { token: string }).token, { mode: 0o600 });
  return ['--enroll-file', tokenFile, '--state-dir', stateDir];
}

/**
 * Starts `ip netns exec <netns> node bin/stowage.js agent …` (ip execs node, so the PID is the agent's).
 * `shippedTimings` leaves out the test's `--heartbeat 500` (and debug logs): the agent beats at its
 * own first interval and then at the server's, as a user's does (test/defaults/).
 */
export function startAgent(o: { host: LabHost; apiUrl: string; token: string; vmDir: string; logDir: string; shippedTimings?: boolean }): AgentProcess {
  mkdirSync(o.vmDir, { recursive: true, mode: 0o700 });
  mkdirSync(o.logDir, { recursive: true, mode: 0o700 });
  const logPath = join(o.logDir, `agent-${o.host.name}.log`);
  const fd = openSync(logPath, 'a', 0o600);
  // --heartbeat 500 so the host is up at once before the server's HOST_TEST_ENV interval takes over; the agent on its own defaults: test/defaults/host-down.ts.
  const args = ['netns', 'exec', o.host.netns, process.execPath, join(REPO_ROOT, 'bin', 'stowage.js'), 'agent',
    '--api', o.apiUrl, '--host', o.host.name, '--vm-dir', o.vmDir, '--address', o.host.address, '--initiator-name', o.host.initiatorName,
    ...enrollAgent(o),
    ...(o.shippedTimings === true ? [] : ['--heartbeat', '500', '--log-level', 'debug'])];
  const child: ChildProcess = spawn('ip', args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: o.logDir }, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start the agent of ${o.host.name}`);
  let done = false;
  const exited = new Promise<void>((res) => child.once('exit', () => { done = true; res(); }));
  return {
    pid, host: o.host, logPath,
    alive: () => !done,
    kill9: async () => {
      if (!done) process.kill(pid, 'SIGKILL');
      await exited;
    },
  };
}

// ---- QEMU inside a namespace, with a second monitor for the test ----

/** A QEMU VM running inside a lab host: one QMP socket for the agent, one for the test. */
export interface HostVm {
  readonly name: string;
  readonly host: LabHost;
  readonly pid: number;
  /** `<vmDir>/<name>.qmp`, the agent's monitor. */
  readonly agentSocket: string;
  /** The test's own monitor (a QMP socket takes one client at a time). */
  readonly testSocket: string;
  /** The test's monitor connection. */
  readonly monitor: QemuVm;
  alive(): boolean;
  /** Closes the test monitor and SIGKILLs QEMU by its PID. */
  stop(): Promise<void>;
}

function accepts(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(socketPath);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => { s.destroy(); resolve(false); });
  });
}

/** True while process `pid` exists. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts `qemu-system-x86_64 -M q35 … -device virtio-scsi-pci,id=scsi0 -daemonize` inside the
 * host's namespace with the agent's socket in `vmDir` and the test's socket in `testDir`.
 */
export async function startHostVm(o: { lab: Lab; host: LabHost; name: string; vmDir: string; testDir: string; incoming?: boolean }): Promise<HostVm> {
  mkdirSync(o.vmDir, { recursive: true });
  mkdirSync(o.testDir, { recursive: true });
  const agentSocket = join(o.vmDir, `${o.name}.qmp`);
  const testSocket = join(o.testDir, `${o.name}-${o.host.name}-test.qmp`);
  const pidFile = join(o.testDir, `${o.name}-${o.host.name}.pid`);
  const logFile = join(o.testDir, `${o.name}-${o.host.name}.log`);
  const problems: string[] = [];
  for (const accel of ['kvm', 'tcg'] as const) {
    // A migration destination must not get -S: it resumes by itself when the source was running.
    const args = ['-M', 'q35', '-accel', accel, '-m', '64', ...(o.incoming === true ? [] : ['-S']), '-nodefaults', '-display', 'none', '-device', 'virtio-scsi-pci,id=scsi0',
      '-qmp', `unix:${agentSocket},server=on,wait=off`, '-qmp', `unix:${testSocket},server=on,wait=off`,
      '-D', logFile, '-daemonize', '-pidfile', pidFile, ...(o.incoming === true ? ['-incoming', 'defer'] : [])];
    const r = await o.lab.hostExec(o.host, 'qemu-system-x86_64', args, { okExitCodes: ANY_EXIT, timeoutMs: 60_000 });
    if (r.exitCode !== 0 || !existsSync(pidFile)) {
      problems.push(`${accel}: exit ${String(r.exitCode)} ${r.stderr.trim()}`);
      continue;
    }
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    await pollUntil(`QEMU ${o.name} on ${o.host.name} to listen`, async () => ((await accepts(testSocket)) ? true : undefined), 30_000, 25);
    const monitor = await QemuVm.open(`${o.name}@${o.host.name}`, testSocket);
    return {
      name: o.name, host: o.host, pid, agentSocket, testSocket, monitor,
      alive: () => pidAlive(pid),
      stop: async () => {
        await monitor.close().catch(() => undefined);
        if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
        for (let i = 0; i < 200 && pidAlive(pid); i++) await sleep(25);
      },
    };
  }
  throw new Error(`could not start QEMU in ${o.host.name}:\n${problems.join('\n')}`);
}

/** Our (`stw-`) block node names in a VM, from `query-named-block-nodes`. */
export async function stwNodes(vm: HostVm): Promise<string[]> {
  const nodes = await vm.monitor.client.execute('query-named-block-nodes', { flat: true }) as { 'node-name'?: string }[];
  return nodes.map((n) => n['node-name'] ?? '').filter((n) => n.startsWith('stw-')).sort();
}

/** The qdev ids of the devices `query-block` shows in a VM (ours start with `stw-dev-`). */
export async function blockDevices(vm: HostVm): Promise<string[]> {
  const blocks = await vm.monitor.client.execute('query-block') as { qdev?: string; inserted?: unknown }[];
  return blocks.filter((b) => b.inserted !== undefined).map((b) => (b.qdev ?? '').replace(/^\/machine\/peripheral\//, '').split('/')[0] ?? '').sort();
}

/** True when the VM has the volume's scsi-hd device with our node inserted (query-block). */
export async function hasDisk(vm: HostVm, volumeId: string): Promise<boolean> {
  return (await blockDevices(vm)).includes(`stw-dev-${volumeId}`);
}

/**
 * Writes `pattern` over [offset, offset+len) through the VM's own disk with HMP `qemu-io -d <device>`
 * (its output goes to QEMU's stdout, not the monitor: check the data with vmReadBack). Never on a
 * fenced or `-incoming` VM: it blocks or aborts there.
 */
export async function vmWrite(vm: HostVm, volumeId: string, pattern: number, offset: number, len: number): Promise<void> {
  await vm.monitor.client.execute('human-monitor-command', { 'command-line': `qemu-io -d stw-dev-${volumeId} "write -P 0x${pattern.toString(16)} ${String(offset)} ${String(len)}"` }, { timeoutMs: 30_000 });
}

let backupSeq = 0;

/**
 * Reads the whole disk as the VM sees it: a `blockdev-backup` job from the disk's node into a
 * scratch raw file in `scratchDir`, then the file's bytes. Works on a running or paused VM.
 */
export async function vmReadBack(vm: HostVm, volumeId: string, scratchDir: string): Promise<Buffer> {
  const info = (await vm.monitor.listAttached()).find((a) => a.volumeId === volumeId);
  if (info?.state !== 'attached' || info.sizeBytes === undefined) throw new Error(`${vm.name} has no disk ${volumeId}`);
  mkdirSync(scratchDir, { recursive: true });
  const n = String(++backupSeq);
  const file = join(scratchDir, `readback-${n}.raw`);
  writeFileSync(file, '');
  truncateSync(file, info.sizeBytes);
  const c = vm.monitor.client;
  const node = `test-rb-${n}`;
  const job = `test-rb-job-${n}`;
  await c.execute('blockdev-add', { driver: 'raw', 'node-name': node, file: { driver: 'file', filename: file } });
  const done = c.eventWaiter('BLOCK_JOB_COMPLETED', (e) => e.data.device === job);
  try {
    await c.execute('blockdev-backup', { 'job-id': job, device: `stw-${volumeId}`, target: node, sync: 'full', 'auto-dismiss': true });
    const e = await done.wait(120_000);
    if (typeof e.data.error === 'string') throw new Error(`read-back of ${volumeId} on ${vm.name} failed: ${e.data.error}`);
  } finally {
    done.dispose();
    await c.execute('blockdev-del', { 'node-name': node }).catch(() => undefined);
  }
  const data = readFileSync(file);
  rmSync(file, { force: true });
  return data;
}

/** True when every byte of `data` in [offset, offset+len) is `pattern`. */
export function holdsPattern(data: Buffer, pattern: number, offset: number, len: number): boolean {
  if (data.length < offset + len) return false;
  for (let i = offset; i < offset + len; i++) if (data[i] !== pattern) return false;
  return true;
}

// ---- tgtd and the control plane's view ----

/** The tgt target IQN the tgt driver gives a volume. */
export function targetIqn(volumeId: string): string {
  return `iqn.2026-11.io.stowage:${volumeId}`;
}

/** Address ACL entries of a volume's target (empty when the target does not exist). */
export async function aclAddresses(lab: Lab, volumeId: string): Promise<string[]> {
  const t = (await showTargets(lab)).find((x) => x.iqn === targetIqn(volumeId));
  return [...(t?.aclAddresses ?? [])].sort();
}

/** Addresses with a session open on a volume's target. */
export async function sessionAddresses(lab: Lab, volumeId: string): Promise<string[]> {
  const t = (await showTargets(lab)).find((x) => x.iqn === targetIqn(volumeId));
  return [...new Set((t?.sessions ?? []).flatMap((s) => s.connections.map((c) => c.address)))].sort();
}

/**
 * TCP connections opened from inside a lab host so far (`Tcp: ActiveOpens` of its namespace's
 * /proc/net/snmp): it grows with every login a QEMU initiator in that host tries.
 */
export async function tcpActiveOpens(lab: Lab, h: LabHost): Promise<number> {
  const r = await lab.hostExec(h, 'cat', ['/proc/net/snmp'], { timeoutMs: 30_000 });
  const [names, values] = r.stdout.split('\n').filter((l) => l.startsWith('Tcp:')).map((l) => l.trim().split(/\s+/));
  const i = names?.indexOf('ActiveOpens') ?? -1;
  const v = i > 0 ? Number(values?.[i]) : NaN;
  if (!Number.isInteger(v)) throw new Error(`no Tcp ActiveOpens in ${h.name}'s /proc/net/snmp:\n${r.stdout}`);
  return v;
}

/** Every attachment, gone ones included. */
export async function allAttachments(api: ApiClient): Promise<AttachmentView[]> {
  return (await api.ok<{ items: AttachmentView[] }>('GET', '/v1/attachments?all=true', 200)).items;
}

/** The live grants of a volume. */
export async function liveGrants(api: ApiClient, volume: string): Promise<GrantView[]> {
  return (await api.ok<{ items: GrantView[] }>('GET', `/v1/volumes/${volume}/grants`, 200)).items.filter((g) => g.state !== 'revoked');
}

/** Polls one attachment until `pred` holds. */
export async function waitAttachment(api: ApiClient, id: string, what: string, pred: (a: AttachmentView) => boolean, timeoutMs = 90_000): Promise<AttachmentView> {
  return pollUntil(`attachment ${id} ${what}`, async () => {
    const a = await api.ok<AttachmentView>('GET', `/v1/attachments/${id}`, 200);
    return pred(a) ? a : undefined;
  }, timeoutMs, 100);
}

/**
 * The iSCSI login a host's real agent plugged into its VM for a volume, read back from QEMU: the
 * protocol node's options (`query-named-block-nodes`: portal, target, LUN, CHAP user) and the
 * secret object the agent created (`qom-get …-sec data`). Nothing is reported in the agent's name;
 * the grant as the API lists it (no secret) must name the same portal, IQN, LUN and CHAP user.
 */
export async function agentConnection(api: ApiClient, host: LabHost, vm: HostVm, volumeId: string): Promise<Connection> {
  const plugged = await pluggedIscsi(vm, volumeId);
  const grants = (await api.ok<{ items: (GrantView & { connection: Connection | null })[] }>('GET', `/v1/volumes/${volumeId}/grants`, 200)).items;
  const g = grants.find((x) => x.hostName === host.name && x.state === 'active');
  if (g?.connection == null) throw new Error(`${host.name} has no active grant on ${volumeId}`);
  const { portal, iqn, lun, chapUser } = g.connection;
  const listed = { portal, iqn, lun, chapUser };
  const inQemu = { portal: plugged.portal, iqn: plugged.iqn, lun: plugged.lun, chapUser: plugged.chapUser };
  if (JSON.stringify(listed) !== JSON.stringify(inQemu)) {
    throw new Error(`${vm.name}@${host.name} is plugged to ${JSON.stringify(inQemu)} but the grant says ${JSON.stringify(listed)}`);
  }
  return plugged;
}

/** What QEMU really has for a volume's iSCSI protocol node (`stw-<id>-p`) and its CHAP secret object. */
export async function pluggedIscsi(vm: HostVm, volumeId: string): Promise<Connection & { initiatorName: string }> {
  const nodes = await vm.monitor.client.execute('query-named-block-nodes', { flat: true }) as { 'node-name'?: string; drv?: string; file?: string; ro?: boolean }[];
  const node = nodes.find((n) => n['node-name'] === `stw-${volumeId}-p`);
  if (node?.drv !== 'iscsi' || node.file === undefined || !node.file.startsWith('json:')) throw new Error(`${vm.name}@${vm.host.name} has no iSCSI node for ${volumeId}`);
  const o = JSON.parse(node.file.slice('json:'.length)) as Record<string, unknown>;
  const str = (k: string): string => {
    const v = o[k];
    if (typeof v !== 'string') throw new Error(`the iSCSI node of ${volumeId} in ${vm.name} has no ${k}`);
    return v;
  };
  const secretId = str('password-secret');
  const secret = await vm.monitor.client.execute('qom-get', { path: `/objects/${secretId}`, property: 'data' });
  if (typeof secret !== 'string' || secret === '') throw new Error(`${vm.name} has no CHAP secret object ${secretId}`);
  return {
    protocol: 'iscsi', portal: str('portal'), iqn: str('target'), lun: Number(o.lun), chapUser: str('user'), chapSecret: secret,
    initiatorName: str('initiator-name'), mode: node.ro === true ? 'ro' : 'rw',
  };
}

/** `iscsi-readcapacity16` from inside `h` with explicit CHAP credentials; never throws on a failed login. */
export async function readCapacityAs(lab: Lab, h: LabHost, c: Connection): Promise<RunResult> {
  if (c.portal === undefined || c.iqn === undefined || c.lun === undefined || c.chapUser === undefined || c.chapSecret === undefined) throw new Error('not iSCSI connection info with CHAP');
  return lab.hostExec(h, 'iscsi-readcapacity16', ['-s', '-i', h.initiatorName, `iscsi://${c.portal}/${c.iqn}/${String(c.lun)}`], {
    okExitCodes: ANY_EXIT, timeoutMs: 60_000, env: { LIBISCSI_CHAP_USERNAME: c.chapUser, LIBISCSI_CHAP_PASSWORD: c.chapSecret }, secrets: [c.chapSecret],
  });
}

/** Registers a tgt backend over btrfs on the lab's tgtd and waits for its first probe. */
export async function registerTgtBackend(api: ApiClient, lab: Lab, name: string): Promise<void> {
  const driver = `tgt://${lab.portal}?backing=${encodeURIComponent(`btrfs://${lab.btrfsDir}/pool-${name}`)}&control=${String(lab.tgtdControlPort)}`;
  await api.ok('POST', '/v1/backends', 201, { body: { name, driver } });
  await pollUntil(`backend ${name} to be probed`, async () => {
    const b = await api.ok<{ state: string; stateReason: string | null; capabilities: string[] }>('GET', `/v1/backends/${name}`, 200);
    if (b.state === 'offline' || b.state === 'error') throw new Error(`backend ${name} is ${b.state}: ${b.stateReason ?? ''}`);
    return b.capabilities.length > 0 ? b : undefined;
  }, 60_000);
}

/** Creates a volume pinned to `backend`; returns its id. */
export async function createVolume(api: ApiClient, name: string, sizeBytes: number, backend: string): Promise<string> {
  const r = await api.ok<{ volume: { id: string; state: string } }>('POST', '/v1/volumes?wait=true', [200, 201], { body: { name, sizeBytes, backend } });
  if (r.volume.state !== 'available') throw new Error(`volume ${name} is ${r.volume.state}`);
  return r.volume.id;
}

/** Waits until every named host's agent has reported and the host is up. */
export async function waitHostsUp(api: ApiClient, names: readonly string[]): Promise<void> {
  for (const n of names) {
    await pollUntil(`host ${n} up`, async () => {
      const r = await api.request('GET', `/v1/hosts/${n}`);
      return r.status === 200 && (r.body as { state?: string }).state === 'up' ? true : undefined;
    }, 60_000);
  }
}

/** Kills with SIGKILL every process in `pids` that still runs (only the PIDs this test started). */
export function killPids(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export { runner };
