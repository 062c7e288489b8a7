import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A process the lab started; killed only if its command line still contains `cmdlineMatch`. */
export interface StateProcess {
  readonly pid: number;
  readonly cmdlineMatch: string;
}

/** A loop device the lab attached; detached only while it is still backed by `backingFile`. */
export interface StateLoop {
  readonly device: string;
  readonly backingFile: string;
}

/** A PostgreSQL server the lab started (stopped with pg_ctl, then by PID). */
export interface StatePostgres {
  readonly binDir: string;
  readonly dataDir: string;
  readonly port: number;
}

/**
 * Everything one lab run created, written as soon as each resource exists so that a crashed or
 * half-started run can be torn down later. Teardown only ever touches what is listed here.
 */
export interface LabState {
  version: 1;
  kind: 'lab' | 'postgres';
  runId: string;
  ownerPid: number;
  /** Start time of the owner process (field 22 of /proc/<pid>/stat), guards against PID reuse. */
  ownerStartTicks: string | null;
  /** Persistent labs (`npm run lab -- up`) are never reaped as stale, only by `down`. */
  persistent: boolean;
  createdAt: string;
  /** Per-run temporary directory, removed last. */
  runDir: string | null;
  processes: StateProcess[];
  /** Files to delete (tgtd control sockets, claim files). */
  files: string[];
  mounts: string[];
  loops: StateLoop[];
  /** Root-namespace links in creation order (bridge first, then veths); deleted in reverse. */
  links: string[];
  netns: string[];
  postgres: StatePostgres | null;
  /** Human-readable facts for `lab status` (addresses, ports, paths). */
  info: Record<string, unknown>;
}

/** Directory holding one JSON state file per lab run (LAB_STATE_DIR overrides). */
export function labStateDir(): string {
  return process.env.LAB_STATE_DIR ?? join(tmpdir(), 'stowage-lab-state');
}

/** Path of the state file for a run id. */
export function stateFilePath(runId: string): string {
  return join(labStateDir(), `${runId}.json`);
}

/** The start-time field of /proc/<pid>/stat, or null when the process does not exist. */
export function processStartTicks(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); field 22 (starttime) is rest[19].
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

/** True while the process exists and is not a zombie. */
export function isProcessAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** The NUL-separated command line of a process joined by spaces, or null if it is gone. */
export function processCmdline(pid: number): string | null {
  try {
    return readFileSync(`/proc/${String(pid)}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return null;
  }
}

/** A fresh, empty state for a run owned by this process. */
export function newState(kind: LabState['kind'], runId: string, persistent: boolean): LabState {
  return {
    version: 1,
    kind,
    runId,
    ownerPid: process.pid,
    ownerStartTicks: processStartTicks(process.pid),
    persistent,
    createdAt: new Date().toISOString(),
    runDir: null,
    processes: [],
    files: [],
    mounts: [],
    loops: [],
    links: [],
    netns: [],
    postgres: null,
    info: {},
  };
}

/** Writes the state atomically (temp file + rename). */
export function saveState(state: LabState): void {
  const dir = labStateDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = stateFilePath(state.runId);
  const tmp = `${file}.${String(process.pid)}.${randomBytes(3).toString('hex')}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
}

/** Removes the state file of a run (after a clean teardown). */
export function removeState(runId: string): void {
  rmSync(stateFilePath(runId), { force: true });
}

/** Every readable state file in the state directory (unreadable ones are skipped). */
export function listStates(): LabState[] {
  let names: string[];
  try {
    names = readdirSync(labStateDir());
  } catch {
    return [];
  }
  const out: LabState[] = [];
  for (const name of names) {
    if (!/^[a-z0-9-]+\.json$/.test(name)) continue;
    try {
      const parsed = JSON.parse(readFileSync(join(labStateDir(), name), 'utf8')) as LabState;
      if (parsed.version === 1 && typeof parsed.runId === 'string') out.push(parsed);
    } catch {
      // a half-written or foreign file: ignore
    }
  }
  return out;
}

/** True when the process that created this state is gone (same PID but a new start time counts as gone). */
export function isOwnerGone(state: LabState): boolean {
  const ticks = processStartTicks(state.ownerPid);
  if (ticks === null) return true;
  return state.ownerStartTicks !== null && ticks !== state.ownerStartTicks;
}

/** A short random run id (4 hex digits) not used by any recorded run. */
export function newRunId(isTaken: (id: string) => boolean): string {
  const recorded = new Set(listStates().map((s) => s.runId));
  for (let i = 0; i < 1000; i++) {
    const id = randomBytes(2).toString('hex');
    if (!recorded.has(id) && !isTaken(id)) return id;
  }
  throw new Error('could not find a free lab run id');
}
