import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve, sep } from 'node:path';
import type { CommandRunner } from '../../src/system/command-runner.js';
import {
  isOwnerGone,
  isProcessAlive,
  listStates,
  processCmdline,
  removeState,
  saveState,
  type LabState,
} from './state.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Mount points currently listed in /proc/self/mounts (octal escapes decoded). */
export function currentMounts(): string[] {
  const text = readFileSync('/proc/self/mounts', 'utf8');
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))));
}

/** The backing file of a loop device according to sysfs, or null when it is detached. */
export function loopBackingFile(device: string): string | null {
  const name = device.replace(/^\/dev\//, '');
  if (!/^loop\d+$/.test(name)) return null;
  try {
    return readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim();
  } catch {
    return null;
  }
}

function isUnder(path: string, dir: string): boolean {
  const d = resolve(dir);
  const p = resolve(path);
  return p === d || p.startsWith(d + sep);
}

/** The run dir is only removed when it is a stowage lab directory directly inside the temp dir. */
function isSafeRunDir(dir: string): boolean {
  const d = resolve(dir);
  const base = resolve(tmpdir());
  return d.startsWith(base + sep) && /^stowage-(lab|pg)-[a-z0-9-]+$/.test(d.slice(base.length + 1));
}

async function killProcess(pid: number, cmdlineMatch: string): Promise<void> {
  const cmd = processCmdline(pid);
  if (cmd === null || !isProcessAlive(pid)) return;
  if (!cmd.includes(cmdlineMatch)) return; // PID reused by something else: leave it alone
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && isProcessAlive(pid); i++) await sleep(50);
  if (isProcessAlive(pid)) throw new Error(`process ${String(pid)} survived SIGKILL`);
}

async function stopPostgres(state: LabState, runner: CommandRunner): Promise<void> {
  const pg = state.postgres;
  if (pg === null) return;
  const pidFile = `${pg.dataDir}/postmaster.pid`;
  if (!existsSync(pidFile)) return;
  const pid = Number((readFileSync(pidFile, 'utf8').split('\n')[0] ?? '').trim());
  if (!Number.isInteger(pid) || pid <= 0 || !isProcessAlive(pid)) return;
  const pgCtl = [`${pg.binDir}/pg_ctl`, '-D', pg.dataDir, '-m', 'immediate', '-w', '-t', '20', 'stop'];
  const asRoot = process.getuid?.() === 0;
  try {
    if (asRoot) await runner.run('runuser', ['-u', 'postgres', '--', ...pgCtl], { timeoutMs: 30_000 });
    else await runner.run(pgCtl[0] ?? 'pg_ctl', pgCtl.slice(1), { timeoutMs: 30_000 });
  } catch {
    await killProcess(pid, 'postgres');
  }
}

async function step(errors: string[], what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Removes everything a state file records, in dependency order, continuing past failures.
 * Returns the failures; the state file is deleted only when there were none.
 */
export async function teardownState(state: LabState, runner: CommandRunner): Promise<string[]> {
  const errors: string[] = [];
  await step(errors, 'stop postgres', () => stopPostgres(state, runner));
  for (const p of state.processes) await step(errors, `kill ${String(p.pid)}`, () => killProcess(p.pid, p.cmdlineMatch));
  for (const f of state.files) {
    await step(errors, `rm ${f}`, () => {
      rmSync(f, { force: true });
      return Promise.resolve();
    });
  }

  // Mounts: anything below the run dir (tests may add nested mounts), deepest first, then recorded ones.
  const mounted = currentMounts();
  const runDir = state.runDir;
  const targets = new Set<string>(state.mounts.filter((m) => mounted.includes(m)));
  if (runDir !== null) for (const m of mounted) if (isUnder(m, runDir)) targets.add(m);
  const ordered = [...targets].sort((a, b) => b.length - a.length);
  for (const m of ordered) {
    await step(errors, `umount ${m}`, async () => {
      try {
        await runner.run('umount', [m], { timeoutMs: 30_000 });
      } catch {
        await runner.run('umount', ['-l', m], { timeoutMs: 30_000 });
      }
    });
  }

  // Loops: recorded ones while still backed by the recorded file, plus any backed by a file in the run dir.
  const loops = new Set<string>();
  for (const l of state.loops) if (loopBackingFile(l.device) === l.backingFile) loops.add(l.device);
  if (runDir !== null) {
    await step(errors, 'list loops', async () => {
      const { stdout } = await runner.run('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'], { timeoutMs: 10_000 });
      for (const line of stdout.split('\n')) {
        const [dev, file] = line.trim().split(/\s+/, 2);
        if (dev !== undefined && file !== undefined && isUnder(file, runDir)) loops.add(dev);
      }
    });
  }
  for (const dev of loops) await step(errors, `losetup -d ${dev}`, () => runner.run('losetup', ['-d', dev], { timeoutMs: 10_000 }).then(() => undefined));

  for (const link of [...state.links].reverse()) {
    if (!existsSync(`/sys/class/net/${link}`)) continue;
    await step(errors, `ip link del ${link}`, () => runner.run('ip', ['link', 'del', link], { timeoutMs: 10_000 }).then(() => undefined));
  }
  for (const ns of state.netns) {
    if (!existsSync(`/run/netns/${ns}`)) continue;
    await step(errors, `ip netns del ${ns}`, () => runner.run('ip', ['netns', 'del', ns], { timeoutMs: 10_000 }).then(() => undefined));
  }
  if (runDir !== null && isSafeRunDir(runDir)) {
    await step(errors, `rm -r ${runDir}`, () => {
      rmSync(runDir, { recursive: true, force: true });
      return Promise.resolve();
    });
  }
  if (errors.length === 0) removeState(state.runId);
  else saveState(state);
  return errors;
}

/** Tears down every recorded lab/postgres whose owner process died and that is not persistent. */
export async function cleanupStaleLabs(runner: CommandRunner): Promise<string[]> {
  const errors: string[] = [];
  for (const s of listStates()) {
    if (s.persistent || !isOwnerGone(s)) continue;
    errors.push(...(await teardownState(s, runner)).map((e) => `${s.runId}: ${e}`));
  }
  return errors;
}
