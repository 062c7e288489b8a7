import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import {
  SpawnCommandRunner,
  type CommandRunner,
  type RunOptions,
  type RunResult,
} from '../../src/system/command-runner.js';
import { freeTcpPort } from './ports.js';
import { isProcessAlive, labStateDir, listStates, newRunId, newState, saveState, stateFilePath, type LabState } from './state.js';
import {
  addStorageNode,
  describeNode,
  nodeTgtadm,
  normalizeNodeSpecs,
  runInNodeWith,
  spawnInNodeWith,
  startNodeTgtd,
  type LabStorageNode,
  type StorageNodeSpec,
} from './storage-node.js';
import { teardownState } from './teardown.js';

export type { LabStorageNode, StorageNodeSpec } from './storage-node.js';

/** What to bring up; every component defaults to on with two hosts. */
export interface LabOptions {
  /** Number of network-namespace hosts (default 2). */
  readonly hosts?: number;
  /** Start a private tgtd (default true). */
  readonly tgtd?: boolean;
  /** Mount a btrfs filesystem on a loop device (default true). */
  readonly btrfs?: boolean;
  /** Mount an XFS filesystem with reflink=1 on a loop device (default true). */
  readonly xfs?: boolean;
  /** Sparse size of the btrfs image (default 2 GiB). */
  readonly btrfsSizeBytes?: number;
  /** Sparse size of the XFS image (default 2 GiB). */
  readonly xfsSizeBytes?: number;
  /** Keep the lab when its creator exits (used by `npm run lab -- up`); default false. */
  readonly persistent?: boolean;
  /**
   * Storage nodes `sn1`, `sn2`, ... (a count, or one spec each): every node its own netns on the
   * bridge, mount namespace, loop filesystem and tgtd (see storage-node.ts). Default none.
   */
  readonly storageNodes?: number | readonly StorageNodeSpec[];
  /** Runner for external programs (default SpawnCommandRunner). */
  readonly runner?: CommandRunner;
}

/** One simulated host: a network namespace with a veth into the lab bridge. */
export interface LabHost {
  /** Short name, `h1`, `h2`, ... */
  readonly name: string;
  /** Network namespace name, unique to the run. */
  readonly netns: string;
  /** IPv4 address of the host on the lab bridge. */
  readonly address: string;
  /** iSCSI initiator name to pass to libiscsi/QEMU from this host. */
  readonly initiatorName: string;
  /** Root-side veth name. */
  readonly veth: string;
}

/** A running lab; `stop()` removes everything it created. */
export interface Lab {
  /** Short unique id of this run (4 hex digits). */
  readonly runId: string;
  /** Per-run temporary directory. */
  readonly runDir: string;
  /** Path of this run's state file. */
  readonly stateFile: string;
  /** Bridge name in the root namespace. */
  readonly bridge: string;
  /** Root-side address on the bridge (servers listen here), e.g. `10.99.37.1`. */
  readonly bridgeAddress: string;
  /** Lab subnet in CIDR form, e.g. `10.99.37.0/24`. */
  readonly subnet: string;
  readonly hosts: readonly LabHost[];
  /** iSCSI portal on the lab bridge, `host:port`; throws when tgtd is off. */
  readonly portal: string;
  /** The same tgtd portal on loopback, `127.0.0.1:port`; throws when tgtd is off. */
  readonly loopbackPortal: string;
  /** TCP port tgtd listens on for iSCSI; throws when tgtd is off. */
  readonly iscsiPort: number;
  /** tgtd management channel number (`tgtadm -C <n>`); throws when tgtd is off. */
  readonly tgtdControlPort: number;
  /** PID of tgtd; throws when tgtd is off. */
  readonly tgtdPid: number;
  /** A target IQN prefix unique to this run: append `:<name>`. */
  readonly iqnPrefix: string;
  /** Mount point of the btrfs filesystem; throws when btrfs is off. */
  readonly btrfsDir: string;
  /** Mount point of the XFS (reflink) filesystem; throws when xfs is off. */
  readonly xfsDir: string;
  /** The runner the lab uses. */
  readonly runner: CommandRunner;
  /** The storage nodes, in order (empty unless `storageNodes` was given). */
  readonly storageNodes: readonly LabStorageNode[];
  /** Looks up a host by short name (`h1`) or namespace name. */
  host(name: string): LabHost;
  /** Looks up a storage node by short name (`sn1`) or namespace name. */
  storageNode(name: string): LabStorageNode;
  /**
   * Spawns argv (no shell) inside a storage node's mount and network namespaces, working in
   * `opts.wd` (default the node's dir), detached unless told otherwise. Its PID is recorded in the
   * lab state, so teardown kills it.
   */
  spawnInNode(node: LabStorageNode | string, argv: readonly string[], opts?: SpawnOptions & { wd?: string }): ChildProcess;
  /** Runs argv inside a storage node's namespaces through the lab's runner (for tgtadm, btrfs, ls). */
  runInNode(node: LabStorageNode | string, argv: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Runs `tgtadm -C 0 --lld iscsi <args>` inside a storage node (reaches that node's tgtd only). */
  nodeTgtadm(node: LabStorageNode | string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Cuts a storage node or host off the bridge (`ip link set <veth> down`). */
  partition(target: LabStorageNode | LabHost | string): Promise<void>;
  /** Undoes partition (`ip link set <veth> up`) and waits until the bridge port forwards. */
  heal(target: LabStorageNode | LabHost | string): Promise<void>;
  /**
   * Sends `signal` (default SIGKILL) to a process this lab started (a node's tgtd or a spawnInNode
   * child); refuses any other PID. Does nothing when the process is already gone.
   */
  killNodeProcess(pid: number, signal?: NodeJS.Signals): void;
  /**
   * Records a process the caller started (a control plane, say) in the lab state, so teardown and
   * stale cleanup SIGKILL it while its command line still contains `cmdlineMatch`.
   */
  adoptProcess(pid: number, cmdlineMatch: string): void;
  /** Runs `cmd args` inside a host's network namespace via `ip netns exec`. */
  hostExec(host: LabHost | string, cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Runs `tgtadm -C <controlPort> --lld iscsi <args>`. */
  tgtadm(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /**
   * Simulates a tgtd crash: SIGKILLs the lab's tgtd (or, given a storage node, that node's) and
   * starts a fresh, empty one on the same control port and portals, in the same namespaces (tgtd
   * keeps nothing across a restart). Resolves with the new PID.
   */
  restartTgtd(node?: LabStorageNode | string): Promise<number>;
  /** Tears everything down; throws listing what could not be removed (state file is kept then). */
  stop(): Promise<void>;
}

const GiB = 1024 * 1024 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function off(what: string): never {
  throw new Error(`this lab was started without ${what}`);
}

interface TgtdInfo {
  pid: number;
  controlPort: number;
  iscsiPort: number;
}

class RunningLab implements Lab {
  readonly hosts: LabHost[] = [];
  readonly storageNodes: LabStorageNode[] = [];
  tgtd: TgtdInfo | null = null;
  btrfs: string | null = null;
  xfs: string | null = null;
  private stopped = false;

  constructor(
    readonly runner: CommandRunner,
    readonly state: LabState,
    readonly runId: string,
    readonly runDir: string,
    readonly subnetIndex: number,
  ) {}

  get stateFile(): string { return stateFilePath(this.runId); }
  get bridge(): string { return `stw${this.runId}br`; }
  get bridgeAddress(): string { return `10.99.${String(this.subnetIndex)}.1`; }
  get subnet(): string { return `10.99.${String(this.subnetIndex)}.0/24`; }
  get iqnPrefix(): string { return `iqn.2024-01.lab.stowage:${this.runId}`; }
  get portal(): string { return `${this.bridgeAddress}:${String(this.iscsiPort)}`; }
  get loopbackPortal(): string { return `127.0.0.1:${String(this.iscsiPort)}`; }
  get iscsiPort(): number { return (this.tgtd ?? off('tgtd')).iscsiPort; }
  get tgtdControlPort(): number { return (this.tgtd ?? off('tgtd')).controlPort; }
  get tgtdPid(): number { return (this.tgtd ?? off('tgtd')).pid; }
  get btrfsDir(): string { return this.btrfs ?? off('btrfs'); }
  get xfsDir(): string { return this.xfs ?? off('xfs'); }

  host(name: string): LabHost {
    const h = this.hosts.find((x) => x.name === name || x.netns === name);
    if (h === undefined) throw new Error(`no lab host ${JSON.stringify(name)} (have ${this.hosts.map((x) => x.name).join(', ')})`);
    return h;
  }

  storageNode(name: string): LabStorageNode {
    const n = this.storageNodes.find((x) => x.name === name || x.netns === name);
    if (n === undefined) throw new Error(`no lab storage node ${JSON.stringify(name)} (have ${this.storageNodes.map((x) => x.name).join(', ') || 'none'})`);
    return n;
  }

  private nodeOf(node: LabStorageNode | string): LabStorageNode {
    return typeof node === 'string' ? this.storageNode(node) : node;
  }

  spawnInNode(node: LabStorageNode | string, argv: readonly string[], opts?: SpawnOptions & { wd?: string }): ChildProcess {
    return spawnInNodeWith(this, this.nodeOf(node), argv, opts);
  }

  runInNode(node: LabStorageNode | string, argv: readonly string[], options?: RunOptions): Promise<RunResult> {
    return runInNodeWith(this.runner, this.nodeOf(node), argv, options);
  }

  nodeTgtadm(node: LabStorageNode | string, args: readonly string[], options?: RunOptions): Promise<RunResult> {
    return nodeTgtadm(this.runner, this.nodeOf(node), args, options);
  }

  private vethOf(target: LabStorageNode | LabHost | string): string {
    if (typeof target !== 'string') return target.veth;
    const h = this.hosts.find((x) => x.name === target || x.netns === target);
    return h?.veth ?? this.storageNode(target).veth;
  }

  async partition(target: LabStorageNode | LabHost | string): Promise<void> {
    await this.runner.run('ip', ['link', 'set', this.vethOf(target), 'down'], { timeoutMs: 10_000 });
  }

  async heal(target: LabStorageNode | LabHost | string): Promise<void> {
    const veth = this.vethOf(target);
    await this.runner.run('ip', ['link', 'set', veth, 'up'], { timeoutMs: 10_000 });
    // A bridge port forwards only once out of the listening/learning states (3 = forwarding).
    for (let i = 0; i < 400; i++) {
      if (readFileSync(`/sys/class/net/${veth}/brport/state`, 'utf8').trim() === '3') return this.flushNeighbours();
      await sleep(50);
    }
    throw new Error(`bridge port ${veth} did not forward after heal`);
  }

  /**
   * Neighbours that failed to answer ARP during a partition stay FAILED for a while, and a connect
   * to them fails at once with "No route to host". One still INCOMPLETE at the heal (a connect's ARP
   * probes outlive its 3 s timeout) turns FAILED a moment later, so forget every learned neighbour
   * everywhere in the lab, not only the FAILED ones (flush never touches permanent entries).
   */
  private async flushNeighbours(): Promise<void> {
    const opts = { timeoutMs: 10_000 };
    await this.runner.run('ip', ['neigh', 'flush', 'dev', this.bridge], opts);
    for (const ns of [...this.hosts, ...this.storageNodes].map((x) => x.netns)) {
      await this.runner.run('ip', ['-n', ns, 'neigh', 'flush', 'dev', 'eth0'], opts);
    }
  }

  killNodeProcess(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.state.processes.some((p) => p.pid === pid)) throw new Error(`pid ${String(pid)} was not started by lab ${this.runId}`);
    if (!isProcessAlive(pid)) return;
    process.kill(pid, signal);
  }

  adoptProcess(pid: number, cmdlineMatch: string): void {
    if (!Number.isInteger(pid) || pid <= 0 || cmdlineMatch === '') throw new Error('adoptProcess needs a PID and a command-line match');
    this.state.processes.push({ pid, cmdlineMatch });
    saveState(this.state);
  }

  hostExec(host: LabHost | string, cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult> {
    const h = typeof host === 'string' ? this.host(host) : host;
    return this.runner.run('ip', ['netns', 'exec', h.netns, cmd, ...args], options);
  }

  tgtadm(args: readonly string[], options?: RunOptions): Promise<RunResult> {
    return this.runner.run('tgtadm', ['-C', String(this.tgtdControlPort), '--lld', 'iscsi', ...args], { timeoutMs: 30_000, ...options });
  }

  async restartTgtd(node?: LabStorageNode | string): Promise<number> {
    if (node !== undefined) {
      const n = this.nodeOf(node) as LabStorageNode & { tgtdPid: number };
      n.tgtdPid = await startNodeTgtd(this, n, true);
      this.recordInfo();
      return n.tgtdPid;
    }
    const old = this.tgtd ?? off('tgtd');
    if (existsSync(`/proc/${String(old.pid)}`)) process.kill(old.pid, 'SIGKILL');
    for (let i = 0; isProcessAlive(old.pid); i++) {
      if (i >= 200) throw new Error(`tgtd ${String(old.pid)} survived SIGKILL`);
      await sleep(50);
    }
    const problems: string[] = [];
    for (let attempt = 0; attempt < 20; attempt++) {
      // The iSCSI port may still be held for a moment by the dying process: retry.
      const res = await tryStartTgtd(this, `restart-${String(attempt)}`, old);
      if (typeof res !== 'string') return res.pid;
      problems.push(res);
      const failed = this.tgtd;
      if (failed !== null && failed.pid !== old.pid && existsSync(`/proc/${String(failed.pid)}`)) process.kill(failed.pid, 'SIGKILL');
      this.tgtd = old;
      await sleep(250);
    }
    throw new Error(`could not restart tgtd:\n${problems.join('\n')}`);
  }

  /** Writes the human-readable facts (addresses, ports, PIDs) into the state for `lab status`. */
  recordInfo(): void {
    this.state.info = {
      ...this.state.info,
      bridge: this.bridge,
      bridgeAddress: this.bridgeAddress,
      subnet: this.subnet,
      hosts: this.hosts,
      ...(this.tgtd !== null ? { portal: this.portal, loopbackPortal: this.loopbackPortal, tgtdControlPort: this.tgtdControlPort, tgtdPid: this.tgtdPid } : {}),
      ...(this.btrfs !== null ? { btrfsDir: this.btrfs } : {}),
      ...(this.xfs !== null ? { xfsDir: this.xfs } : {}),
      ...(this.storageNodes.length > 0 ? { storageNodes: this.storageNodes.map(describeNode) } : {}),
      iqnPrefix: this.iqnPrefix,
    };
    saveState(this.state);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const errors = await teardownState(this.state, this.runner);
    if (errors.length > 0) throw new Error(`lab ${this.runId} teardown left resources behind:\n${errors.join('\n')}`);
  }
}

/** Subnet indexes (the N of 10.99.N.0/24) already used by an interface address or another lab. */
async function usedSubnets(runner: CommandRunner): Promise<Set<number>> {
  const used = new Set<number>();
  const { stdout } = await runner.run('ip', ['-o', '-4', 'addr', 'show'], { timeoutMs: 10_000 });
  for (const m of stdout.matchAll(/inet 10\.99\.(\d+)\./g)) used.add(Number(m[1]));
  for (const s of listStates()) if (typeof s.info.subnetIndex === 'number') used.add(s.info.subnetIndex);
  return used;
}

/** Claims a subnet index with an exclusive claim file so concurrent labs never share one. */
async function claimSubnet(runner: CommandRunner, state: LabState, runId: string): Promise<number> {
  const used = await usedSubnets(runner);
  const start = (parseInt(runId, 16) % 253) + 2;
  for (let k = 0; k < 253; k++) {
    const n = ((start - 2 + k) % 253) + 2;
    if (used.has(n)) continue;
    const claim = join(labStateDir(), `subnet-${String(n)}.claim`);
    try {
      writeFileSync(claim, runId, { flag: 'wx' });
    } catch {
      continue;
    }
    state.files.push(claim);
    state.info.subnetIndex = n;
    saveState(state);
    return n;
  }
  throw new Error('no free 10.99.N.0/24 subnet for the lab');
}

async function addBridge(lab: RunningLab): Promise<void> {
  const r = lab.runner;
  lab.state.links.push(lab.bridge);
  saveState(lab.state);
  await r.run('ip', ['link', 'add', 'name', lab.bridge, 'type', 'bridge']);
  await r.run('ip', ['addr', 'add', `${lab.bridgeAddress}/24`, 'dev', lab.bridge]);
  await r.run('ip', ['link', 'set', lab.bridge, 'up']);
}

async function addHost(lab: RunningLab, i: number): Promise<void> {
  const r = lab.runner;
  const host: LabHost = {
    name: `h${String(i)}`,
    netns: `stw${lab.runId}-h${String(i)}`,
    address: `10.99.${String(lab.subnetIndex)}.${String(10 + i)}`,
    initiatorName: `iqn.2024-01.lab.stowage.client:${lab.runId}-h${String(i)}`,
    veth: `stw${lab.runId}v${String(i)}`,
  };
  lab.state.netns.push(host.netns);
  lab.state.links.push(host.veth);
  saveState(lab.state);
  await r.run('ip', ['netns', 'add', host.netns]);
  await r.run('ip', ['link', 'add', host.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.netns]);
  await r.run('ip', ['link', 'set', host.veth, 'master', lab.bridge, 'up']);
  await r.run('ip', ['-n', host.netns, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0']);
  await r.run('ip', ['-n', host.netns, 'link', 'set', 'eth0', 'up']);
  await r.run('ip', ['-n', host.netns, 'link', 'set', 'lo', 'up']);
  lab.hosts.push(host);
}

function pickControlPort(): number {
  for (let i = 0; i < 100; i++) {
    const p = randomInt(1_000, 32_000); // tgtd rejects -C values above 32767
    if (!existsSync(`/var/run/tgtd/socket.${String(p)}`) && !existsSync(`/var/run/tgtd/socket.${String(p)}.lock`)) return p;
  }
  throw new Error('no free tgtd control port');
}

/**
 * Starts tgtd detached (on fresh ports, or on `reuse`'s ports for a restart); resolves once
 * tgtadm answers and both portals listen, or with the reason it did not.
 */
async function tryStartTgtd(lab: RunningLab, attempt: number | string, reuse?: TgtdInfo): Promise<TgtdInfo | string> {
  const controlPort = reuse?.controlPort ?? pickControlPort();
  const iscsiPort = reuse?.iscsiPort ?? await freeTcpPort('127.0.0.1');
  const logPath = join(lab.runDir, `tgtd-${String(attempt)}.log`);
  const fd = openSync(logPath, 'a');
  const args = ['-f', '-C', String(controlPort), '--iscsi', `portal=${lab.bridgeAddress}:${String(iscsiPort)}`];
  const child = spawn('tgtd', args, { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  let exited = false;
  child.on('exit', () => { exited = true; });
  const spawnError = new Promise<Error>((res) => child.once('error', res));
  child.unref();
  if (child.pid === undefined) return `tgtd did not start: ${(await spawnError).message}`;
  const pid = child.pid;
  lab.state.processes.push({ pid, cmdlineMatch: `tgtd -f -C ${String(controlPort)} ` });
  lab.state.files.push(`/var/run/tgtd/socket.${String(controlPort)}`, `/var/run/tgtd/socket.${String(controlPort)}.lock`);
  saveState(lab.state);
  const info: TgtdInfo = { pid, controlPort, iscsiPort };
  lab.tgtd = info;
  for (let i = 0; ; i++) {
    if (exited) return `tgtd exited at start: ${readFileSync(logPath, 'utf8').trim().split('\n').slice(-5).join(' | ')}`;
    try {
      await lab.tgtadm(['--op', 'show', '--mode', 'target'], { timeoutMs: 5_000 });
      break;
    } catch (err) {
      if (i >= 100) return `tgtd did not answer: ${err instanceof Error ? err.message : String(err)}`;
      await sleep(50);
    }
  }
  try {
    await lab.tgtadm(['--op', 'new', '--mode', 'portal', '--param', `portal=127.0.0.1:${String(iscsiPort)}`]);
  } catch (err) {
    return `tgtd could not listen on 127.0.0.1:${String(iscsiPort)}: ${err instanceof Error ? err.message : String(err)}`;
  }
  return info;
}

async function startTgtd(lab: RunningLab): Promise<void> {
  const problems: string[] = [];
  for (let attempt = 0; attempt < 4; attempt++) {
    const res = await tryStartTgtd(lab, attempt);
    if (typeof res !== 'string') return;
    problems.push(res);
    const tgtd = lab.tgtd;
    lab.tgtd = null;
    if (tgtd !== null && existsSync(`/proc/${String(tgtd.pid)}`)) process.kill(tgtd.pid, 'SIGKILL');
  }
  throw new Error(`could not start tgtd:\n${problems.join('\n')}`);
}

/** Creates a sparse image, attaches it to a loop device, makes a filesystem and mounts it. */
async function addLoopFs(lab: RunningLab, fs: 'btrfs' | 'xfs', sizeBytes: number): Promise<string> {
  const r = lab.runner;
  const img = join(lab.runDir, `${fs}.img`);
  const dir = join(lab.runDir, fs);
  writeFileSync(img, '');
  truncateSync(img, sizeBytes);
  mkdirSync(dir);
  const loop = (await r.run('losetup', ['--find', '--show', img], { timeoutMs: 30_000 })).stdout.trim();
  lab.state.loops.push({ device: loop, backingFile: img });
  saveState(lab.state);
  if (fs === 'btrfs') await r.run('mkfs.btrfs', ['-q', '-f', '-L', `stw${lab.runId}`, loop], { timeoutMs: 60_000 });
  else await r.run('mkfs.xfs', ['-q', '-f', '-m', 'reflink=1', '-L', `stw${lab.runId}`, loop], { timeoutMs: 60_000 });
  lab.state.mounts.push(dir);
  saveState(lab.state);
  await r.run('mount', [loop, dir], { timeoutMs: 30_000 });
  return dir;
}

/**
 * Brings up a lab with names unique to this run: a bridge at 10.99.N.1, K namespace hosts,
 * a private tgtd and btrfs/XFS filesystems on loop devices. Everything is recorded in a state file
 * as it is created; on any failure what was created is removed before the error is rethrown.
 */
export async function startLab(opts: LabOptions = {}): Promise<Lab> {
  const runner = opts.runner ?? new SpawnCommandRunner();
  const hostCount = opts.hosts ?? 2;
  if (!Number.isInteger(hostCount) || hostCount < 0 || hostCount > 200) throw new Error(`bad host count ${String(hostCount)}`);
  const nodeSpecs = normalizeNodeSpecs(opts.storageNodes);
  mkdirSync(labStateDir(), { recursive: true, mode: 0o700 });
  const runId = newRunId((id) => existsSync(`/sys/class/net/stw${id}br`) || existsSync(`/run/netns/stw${id}-h1`) || existsSync(join(tmpdir(), `stowage-lab-${id}`)));
  const state = newState('lab', runId, opts.persistent ?? false);
  const runDir = join(tmpdir(), `stowage-lab-${runId}`);
  mkdirSync(runDir, { mode: 0o755 });
  state.runDir = runDir;
  saveState(state);
  let lab: RunningLab | null = null;
  try {
    const subnetIndex = await claimSubnet(runner, state, runId);
    lab = new RunningLab(runner, state, runId, runDir, subnetIndex);
    await addBridge(lab);
    for (let i = 1; i <= hostCount; i++) await addHost(lab, i);
    if (opts.tgtd ?? true) await startTgtd(lab);
    if (opts.btrfs ?? true) lab.btrfs = await addLoopFs(lab, 'btrfs', opts.btrfsSizeBytes ?? 2 * GiB);
    if (opts.xfs ?? true) lab.xfs = await addLoopFs(lab, 'xfs', opts.xfsSizeBytes ?? 2 * GiB);
    for (const [i, spec] of nodeSpecs.entries()) lab.storageNodes.push(await addStorageNode(lab, i + 1, spec));
    lab.recordInfo();
    return lab;
  } catch (err) {
    const errors = await teardownState(state, runner);
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(errors.length > 0 ? `${msg}\n(teardown after the failed start also failed:\n${errors.join('\n')})` : msg, { cause: err });
  }
}
