import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import type { AgentLogger, LogFields } from '../../src/agent/agent-logger.js';

/** A QEMU process started by a test; `stop()` kills it by PID. */
export interface TestVm {
  readonly name: string;
  readonly socketPath: string;
  readonly pid: number;
  readonly accel: 'kvm' | 'tcg';
  readonly logPath: string;
  /** True while the process runs. */
  alive(): boolean;
  /** SIGKILLs the process (by its PID) and waits until it is gone. */
  stop(): Promise<void>;
}

/** How to start a test VM. */
export interface TestVmOptions {
  /** Directory for the socket (`<dir>/<name>.qmp`) and the log. */
  readonly dir: string;
  readonly name: string;
  /** Start with `-incoming defer` (a migration destination). */
  readonly incoming?: boolean;
  /** Start with `-S` (vCPUs stopped); default true unless incoming. */
  readonly paused?: boolean;
  /** More QEMU arguments (e.g. a pcie-root-port). */
  readonly extraArgs?: readonly string[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True once something accepts connections on the unix socket (QEMU creates the file before it listens). */
function accepts(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(socketPath);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => { s.destroy(); resolve(false); });
  });
}

function qemuArgs(opts: TestVmOptions, accel: 'kvm' | 'tcg', socketPath: string): string[] {
  const args = ['-M', 'q35', '-accel', accel, '-m', '64', '-nodefaults', '-display', 'none',
    '-device', 'virtio-scsi-pci,id=scsi0', '-qmp', `unix:${socketPath},server=on,wait=off`];
  if (opts.paused ?? opts.incoming !== true) args.push('-S');
  if (opts.incoming === true) args.push('-incoming', 'defer');
  args.push(...(opts.extraArgs ?? []));
  return args;
}

async function tryStart(opts: TestVmOptions, accel: 'kvm' | 'tcg'): Promise<TestVm | string> {
  const socketPath = join(opts.dir, `${opts.name}.qmp`);
  const logPath = join(opts.dir, `${opts.name}-${accel}.log`);
  const fd = openSync(logPath, 'a');
  const child = spawn('qemu-system-x86_64', qemuArgs(opts, accel, socketPath), { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', () => { exited = true; resolve(); });
    child.once('error', () => { exited = true; resolve(); });
  });
  child.unref();
  const pid = child.pid;
  if (pid === undefined) return `qemu did not start (${accel})`;
  let ready = false;
  for (let i = 0; i < 200 && !exited && !ready; i++) {
    ready = existsSync(socketPath) && (await accepts(socketPath));
    if (!ready) await sleep(25);
  }
  if (exited || !ready) {
    if (!exited) process.kill(pid, 'SIGKILL');
    await exitPromise;
    return `qemu (${accel}) did not come up: ${readFileSync(logPath, 'utf8').trim().split('\n').slice(-3).join(' | ')}`;
  }
  return {
    name: opts.name,
    socketPath,
    pid,
    accel,
    logPath,
    alive: () => !exited,
    stop: async () => {
      if (exited) return;
      process.kill(pid, 'SIGKILL');
      await exitPromise;
    },
  };
}

/** Starts `qemu-system-x86_64 -M q35 … -device virtio-scsi-pci,id=scsi0` with KVM, falling back to TCG. */
export async function startTestVm(opts: TestVmOptions): Promise<TestVm> {
  const kvm = await tryStart(opts, 'kvm');
  if (typeof kvm !== 'string') return kvm;
  const tcg = await tryStart(opts, 'tcg');
  if (typeof tcg !== 'string') return tcg;
  throw new Error(`could not start a test VM:\n${kvm}\n${tcg}`);
}

/** A logger that keeps every line as JSON text, so tests can assert on what was logged. */
export function captureLogger(): AgentLogger & { readonly lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (fields: LogFields, msg: string): void => { lines.push(JSON.stringify({ level, msg, ...fields })); };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
