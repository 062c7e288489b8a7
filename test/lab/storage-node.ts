import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import type { CommandRunner, RunOptions, RunResult } from '../../src/system/command-runner.js';
import { isProcessAlive, saveState, type LabState } from './state.js';

/**
 * Storage nodes of the lab (real-storage-lab.md §8): each one a network namespace on the lab bridge
 * plus a persistent mount namespace of its own, in which a private tmpfs covers /run/tgtd (so its
 * tgtd's control socket, `socket.0`, is reachable only from inside that node), its loop filesystem is
 * mounted, and its own tgtd runs. Everything is recorded in the lab state before it exists.
 */

/** What one storage node gets. */
export interface StorageNodeSpec {
  /** Short name; default `sn<i>`. Lowercase letters, digits and dashes, at most 8 characters. */
  readonly name?: string;
  /** Filesystem on the node's loop device (default btrfs). */
  readonly filesystem?: 'btrfs' | 'xfs';
  /** Sparse size of the node's image in bytes (default 1 GiB; XFS needs at least 300 MiB). */
  readonly sizeBytes?: number;
}

/** A running storage node. */
export interface LabStorageNode {
  /** Short name, `sn1`, `sn2`, ... */
  readonly name: string;
  /** Network namespace name, unique to the run (under /run/netns). */
  readonly netns: string;
  /** IPv4 address of the node on the lab bridge. */
  readonly address: string;
  /** File holding the node's mount namespace (`nsenter --mount=<this>`). */
  readonly mountHandle: string;
  /** Mount point of the node's loop filesystem; the filesystem is visible only inside the node. */
  readonly dataDir: string;
  readonly filesystem: 'btrfs' | 'xfs';
  /** Loop device behind the node's filesystem (loop devices are global). */
  readonly loopDevice: string;
  /** iSCSI port of the node's tgtd on `address` (3260). */
  readonly iscsiPort: number;
  /** `tgtadm -C <this>` inside the node (0: the socket is private to the node). */
  readonly tgtdControlPort: number;
  /** PID of the node's tgtd (changes on restartTgtd). */
  readonly tgtdPid: number;
  /** Root-side veth name (`ip link set <veth> down` partitions the node). */
  readonly veth: string;
  /** A 0700 directory for `stowage node --state-dir` (on the root filesystem, outside the loop fs). */
  readonly stateDir: string;
  /** The node's own directory (working directory of processes run in it; tgtd logs). */
  readonly nodeDir: string;
  /** `address:iscsiPort`. */
  readonly portal: string;
}

/** What the lab hands the storage-node code: its runner, state and naming. */
export interface StorageNodeContext {
  readonly runner: CommandRunner;
  readonly state: LabState;
  readonly runId: string;
  readonly runDir: string;
  readonly subnetIndex: number;
  readonly bridge: string;
}

/** Mutable view of a node (the tgtd PID changes on a restart). */
interface NodeRecord extends LabStorageNode {
  tgtdPid: number;
}

const GiB = 1024 * 1024 * 1024;
const ISCSI_PORT = 3260;
const CONTROL_PORT = 0;
/** Storage nodes sit at .221 and up so they never meet hosts (.11–.210). */
const FIRST_NODE_OCTET = 220;
/** Most storage nodes one lab can have. */
export const MAX_STORAGE_NODES = 30;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The specs for `storageNodes` (a count or a list); throws on a bad count or name. */
export function normalizeNodeSpecs(nodes: number | readonly StorageNodeSpec[] | undefined): Required<StorageNodeSpec>[] {
  const list: readonly StorageNodeSpec[] = typeof nodes === 'number' ? Array.from({ length: nodes }, () => ({})) : (nodes ?? []);
  if (typeof nodes === 'number' && (!Number.isInteger(nodes) || nodes < 0)) throw new Error(`bad storage node count ${String(nodes)}`);
  if (list.length > MAX_STORAGE_NODES) throw new Error(`at most ${String(MAX_STORAGE_NODES)} storage nodes, asked for ${String(list.length)}`);
  const out = list.map((s, i) => ({ name: s.name ?? `sn${String(i + 1)}`, filesystem: s.filesystem ?? 'btrfs', sizeBytes: s.sizeBytes ?? GiB }));
  for (const s of out) {
    if (!/^[a-z][a-z0-9-]{0,7}$/.test(s.name)) throw new Error(`bad storage node name ${JSON.stringify(s.name)} (lowercase letters, digits, dashes; at most 8)`);
    if (!Number.isInteger(s.sizeBytes) || s.sizeBytes < 300 * 1024 * 1024) throw new Error(`storage node ${s.name}: size ${String(s.sizeBytes)} is below 300 MiB`);
  }
  if (new Set(out.map((s) => s.name)).size !== out.length) throw new Error('storage node names must be unique');
  return out;
}

/** argv prefix that enters a node's mount and network namespaces, working in `wd`. */
export function nsenterArgs(node: Pick<LabStorageNode, 'mountHandle' | 'netns'>, wd: string): string[] {
  return [`--mount=${node.mountHandle}`, `--net=/run/netns/${node.netns}`, `--wd=${wd}`];
}

/** The directory of mount-namespace handles: a bind mount of itself, private, as `unshare --mount=FILE` needs. */
async function ensureHandleDir(ctx: StorageNodeContext): Promise<string> {
  const dir = join(ctx.runDir, 'nsfs');
  if (ctx.state.mounts.includes(dir)) return dir;
  mkdirSync(dir, { mode: 0o700 });
  ctx.state.mounts.push(dir);
  saveState(ctx.state);
  await ctx.runner.run('mount', ['--bind', dir, dir], { timeoutMs: 10_000 });
  await ctx.runner.run('mount', ['--make-private', dir], { timeoutMs: 10_000 });
  return dir;
}

/** Mount points in a /proc/<pid>/mounts text (octal escapes decoded), with their sources. */
export function parseMounts(text: string): { source: string; target: string }[] {
  const decode = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text.split('\n').filter((l) => l.length > 0).map((l) => {
    const [source = '', target = ''] = l.split(' ');
    return { source: decode(source), target: decode(target) };
  });
}

/**
 * A new mount namespace starts with a copy of every root mount, other labs' loop filesystems
 * included; the root's mounts are private, so their later umounts never reach the copy, which would
 * keep those filesystems (and their loop devices) alive until this node goes. Detach the copies of
 * loop filesystems and of anything under the temp dir at once; the node's own mounts come after.
 */
async function dropForeignMounts(r: CommandRunner, handle: string): Promise<void> {
  const base = tmpdir() + sep;
  const { stdout } = await r.run('nsenter', [`--mount=${handle}`, 'cat', '/proc/self/mounts'], { timeoutMs: 10_000 });
  const foreign = parseMounts(stdout)
    .filter((m) => m.source.startsWith('/dev/loop') || m.target.startsWith(base))
    .map((m) => m.target)
    .sort((a, b) => b.length - a.length);
  if (foreign.length > 0) await r.run('nsenter', [`--mount=${handle}`, 'umount', '-l', ...new Set(foreign)], { timeoutMs: 30_000 });
}

/** Runs argv inside the node's namespaces through the runner (working dir: the node's dir). */
export function runInNodeWith(runner: CommandRunner, node: LabStorageNode, argv: readonly string[], options?: RunOptions): Promise<RunResult> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined) throw new Error('runInNode needs a command');
  return runner.run('nsenter', [...nsenterArgs(node, node.nodeDir), cmd, ...rest], { timeoutMs: 30_000, ...options });
}

/**
 * Spawns argv inside the node (nsenter execs it, so the child's PID is the program's) and records
 * the PID in the lab state so teardown kills it. `opts.detached` defaults to true (its own session).
 */
export function spawnInNodeWith(ctx: StorageNodeContext, node: LabStorageNode, argv: readonly string[], opts: SpawnOptions & { wd?: string } = {}): ChildProcess {
  if (argv.length === 0) throw new Error('spawnInNode needs a command');
  const { wd, ...spawnOpts } = opts;
  const child = spawn('nsenter', [...nsenterArgs(node, wd ?? node.nodeDir), ...argv], { detached: true, ...spawnOpts });
  if (child.pid === undefined) return child; // the 'error' event tells the caller why
  // Both nsenter's command line and the exec'd program's contain the argv.
  ctx.state.processes.push({ pid: child.pid, cmdlineMatch: argv.join(' ') });
  saveState(ctx.state);
  return child;
}

/** Starts the node's tgtd (setsid, log in the node dir) and waits until its tgtadm answers. */
async function tryStartNodeTgtd(ctx: StorageNodeContext, node: NodeRecord, attempt: string): Promise<number | string> {
  const logPath = join(node.nodeDir, `tgtd-${attempt}.log`);
  const fd = openSync(logPath, 'a');
  const argv = ['tgtd', '-f', '-C', String(CONTROL_PORT), '--iscsi', `portal=${node.portal}`];
  let child: ChildProcess;
  try {
    child = spawnInNodeWith(ctx, node, argv, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  let exited = false;
  child.on('exit', () => { exited = true; });
  const spawnError = new Promise<Error>((res) => child.once('error', res));
  child.unref();
  if (child.pid === undefined) return `tgtd did not start: ${(await spawnError).message}`;
  node.tgtdPid = child.pid;
  for (let i = 0; ; i++) {
    if (exited) return `tgtd of ${node.name} exited at start: ${readFileSync(logPath, 'utf8').trim().split('\n').slice(-5).join(' | ')}`;
    try {
      await nodeTgtadm(ctx.runner, node, ['--op', 'show', '--mode', 'target'], { timeoutMs: 5_000 });
      break;
    } catch (err) {
      if (i >= 100) return `tgtd of ${node.name} did not answer: ${err instanceof Error ? err.message : String(err)}`;
      await sleep(50);
    }
  }
  // tgtadm answers before the portal is bound at times: wait for the listener in the node's netns.
  for (let i = 0; ; i++) {
    const ss = await ctx.runner.run('ip', ['netns', 'exec', node.netns, 'ss', '-Hltn'], { timeoutMs: 10_000 });
    if (ss.stdout.includes(node.portal)) return child.pid;
    if (exited) return `tgtd of ${node.name} exited: ${readFileSync(logPath, 'utf8').trim().split('\n').slice(-5).join(' | ')}`;
    if (i >= 100) return `tgtd of ${node.name} never listened on ${node.portal}`;
    await sleep(50);
  }
}

/** `tgtadm -C 0 --lld iscsi <args>` inside the node. */
export function nodeTgtadm(runner: CommandRunner, node: LabStorageNode, args: readonly string[], options?: RunOptions): Promise<RunResult> {
  return runInNodeWith(runner, node, ['tgtadm', '-C', String(node.tgtdControlPort), '--lld', 'iscsi', ...args], options);
}

async function killAndWait(pid: number): Promise<void> {
  if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL');
  for (let i = 0; isProcessAlive(pid); i++) {
    if (i >= 200) throw new Error(`process ${String(pid)} survived SIGKILL`);
    await sleep(50);
  }
}

/** Starts (or, with `restart`, SIGKILLs and starts again) the node's tgtd; resolves with its PID. */
export async function startNodeTgtd(ctx: StorageNodeContext, node: LabStorageNode, restart: boolean): Promise<number> {
  const rec = node as NodeRecord;
  if (restart) await killAndWait(rec.tgtdPid);
  const problems: string[] = [];
  for (let attempt = 0; attempt < 20; attempt++) {
    // After a kill the iSCSI port may still be held for a moment: retry.
    const res = await tryStartNodeTgtd(ctx, rec, `${restart ? 'restart-' : ''}${String(Date.now())}-${String(attempt)}`);
    if (typeof res === 'number') return res;
    problems.push(res);
    await killAndWait(rec.tgtdPid);
    await sleep(250);
  }
  throw new Error(`could not start tgtd on ${node.name}:\n${problems.join('\n')}`);
}

/**
 * Creates storage node `i` (1-based): netns + veth on the bridge, a persistent mount namespace
 * (slave of the root one, so later `ip netns add`s stay visible) with a tmpfs on /run/tgtd and the
 * loop filesystem mounted at its data dir, and its tgtd. Every resource is in the state first.
 */
export async function addStorageNode(ctx: StorageNodeContext, i: number, spec: Required<StorageNodeSpec>): Promise<LabStorageNode> {
  const r = ctx.runner;
  const handles = await ensureHandleDir(ctx);
  const nodeDir = join(ctx.runDir, `node-${spec.name}`);
  const address = `10.99.${String(ctx.subnetIndex)}.${String(FIRST_NODE_OCTET + i)}`;
  const node: NodeRecord = {
    name: spec.name,
    netns: `stw${ctx.runId}-${spec.name}`,
    address,
    mountHandle: join(handles, `${spec.name}.mnt`),
    dataDir: join(nodeDir, 'data'),
    filesystem: spec.filesystem,
    loopDevice: '',
    iscsiPort: ISCSI_PORT,
    tgtdControlPort: CONTROL_PORT,
    tgtdPid: 0,
    veth: `stw${ctx.runId}s${String(i)}`,
    stateDir: join(nodeDir, 'state'),
    nodeDir,
    portal: `${address}:${String(ISCSI_PORT)}`,
  };
  mkdirSync(nodeDir, { mode: 0o755 });
  mkdirSync(node.dataDir, { mode: 0o755 });
  mkdirSync(node.stateDir, { mode: 0o700 });

  ctx.state.netns.push(node.netns);
  ctx.state.links.push(node.veth);
  saveState(ctx.state);
  await r.run('ip', ['netns', 'add', node.netns]);
  await r.run('ip', ['link', 'add', node.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node.netns]);
  await r.run('ip', ['link', 'set', node.veth, 'master', ctx.bridge, 'up']);
  await r.run('ip', ['-n', node.netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
  await r.run('ip', ['-n', node.netns, 'link', 'set', 'eth0', 'up']);
  await r.run('ip', ['-n', node.netns, 'link', 'set', 'lo', 'up']);

  const img = join(ctx.runDir, `${spec.name}.${spec.filesystem}.img`);
  writeFileSync(img, '');
  truncateSync(img, spec.sizeBytes);
  const loop = (await r.run('losetup', ['--find', '--show', img], { timeoutMs: 30_000 })).stdout.trim();
  ctx.state.loops.push({ device: loop, backingFile: img });
  saveState(ctx.state);
  const label = `stw${ctx.runId}${spec.name}`.slice(0, 12);
  if (spec.filesystem === 'btrfs') await r.run('mkfs.btrfs', ['-q', '-f', '-L', label, loop], { timeoutMs: 60_000 });
  else await r.run('mkfs.xfs', ['-q', '-f', '-m', 'reflink=1', '-L', label, loop], { timeoutMs: 60_000 });

  // The mount point of the private tmpfs must exist (on the shared /run, empty; tgtd makes it too).
  if (!existsSync('/run/tgtd')) mkdirSync('/run/tgtd', { recursive: true, mode: 0o755 });
  writeFileSync(node.mountHandle, '', { mode: 0o600 });
  ctx.state.mounts.push(node.mountHandle);
  saveState(ctx.state);
  await r.run('unshare', [`--mount=${node.mountHandle}`, '--propagation', 'slave', 'true'], { timeoutMs: 10_000 });
  await dropForeignMounts(r, node.mountHandle);
  await r.run('nsenter', [`--mount=${node.mountHandle}`, 'mount', '-t', 'tmpfs', '-o', 'mode=0755,size=16m', `stw${ctx.runId}-${spec.name}-tgtd`, '/run/tgtd'], { timeoutMs: 10_000 });
  await r.run('nsenter', [`--mount=${node.mountHandle}`, 'mount', loop, node.dataDir], { timeoutMs: 30_000 });
  (node as { loopDevice: string }).loopDevice = loop;

  node.tgtdPid = await startNodeTgtd(ctx, node, false);
  return node;
}

/** The facts `lab status` shows for a node. */
export function describeNode(n: LabStorageNode): Record<string, unknown> {
  return {
    name: n.name, netns: n.netns, address: n.address, portal: n.portal, mountHandle: n.mountHandle,
    dataDir: n.dataDir, filesystem: n.filesystem, tgtdPid: n.tgtdPid, veth: n.veth, stateDir: n.stateDir,
  };
}
