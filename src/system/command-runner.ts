import { spawn } from 'node:child_process';

/** Options for one command run. */
export interface RunOptions {
  /** Kill the command after this many milliseconds (default 60 000). */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /** Extra environment; `LC_ALL=C` is always set. */
  readonly env?: Readonly<Record<string, string>>;
  /** Written to stdin, then stdin is closed. */
  readonly input?: string;
  readonly cwd?: string;
  /** Strings that must never appear in logs or errors (CHAP secrets, passwords). */
  readonly secrets?: readonly string[];
  /** Exit codes that count as success (default [0]). */
  readonly okExitCodes?: readonly number[];
  /** Progress lines from stdout/stderr as they arrive (e.g. qemu-img -p). */
  readonly onOutput?: (chunk: string, stream: 'stdout' | 'stderr') => void;
}

/** What a finished command produced. Output is capped at OUTPUT_CAP_BYTES per stream. */
export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

/** The only way the system runs external programs: argv arrays, never a shell string. */
export interface CommandRunner {
  run(cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
}

export const OUTPUT_CAP_BYTES = 4 * 1024 * 1024;

/** Replaces every secret in `text` with `***`. */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const s of secrets) if (s.length > 0) out = out.split(s).join('***');
  return out;
}

/** A failed command, reading like a diagnosis: the redacted command line, exit code and stderr tail. */
export class CommandFailedError extends Error {
  readonly command: string;
  readonly exitCode: number | null;
  readonly stderrTail: string;
  readonly stdout: string;
  readonly timedOut: boolean;

  constructor(init: { command: string; exitCode: number | null; stderr: string; stdout: string; timedOut: boolean; reason?: string }) {
    const tail = init.stderr.trim().split('\n').slice(-8).join('\n');
    const how = init.timedOut ? 'timed out' : init.reason ?? `exited with code ${String(init.exitCode)}`;
    super(`command \`${init.command}\` ${how}${tail ? `: ${tail}` : ''}`);
    this.name = 'CommandFailedError';
    this.command = init.command;
    this.exitCode = init.exitCode;
    this.stderrTail = tail;
    this.stdout = init.stdout;
    this.timedOut = init.timedOut;
  }
}

function quoteArg(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** Renders argv for messages only (never executed). */
export function formatCommand(cmd: string, args: readonly string[], secrets: readonly string[] = []): string {
  return redact([cmd, ...args].map(quoteArg).join(' '), secrets);
}

/** The real runner over child_process.spawn (no shell). */
export class SpawnCommandRunner implements CommandRunner {
  run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const { timeoutMs = 60_000, signal, env, input, cwd, secrets = [], okExitCodes = [0], onOutput } = options;
    const shown = formatCommand(cmd, args, secrets);
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(new CommandFailedError({ command: shown, exitCode: null, stderr: '', stdout: '', timedOut: false, reason: 'was cancelled' }));
        return;
      }
      const child = spawn(cmd, [...args], {
        cwd,
        env: { ...process.env, ...env, LC_ALL: 'C' },
        stdio: ['pipe', 'pipe', 'pipe'],
        shell: false,
        // Own process group, so a timeout or cancel also kills whatever the command started.
        detached: true,
      });
      const killGroup = (): void => {
        try {
          if (child.pid === undefined) child.kill('SIGKILL');
          else process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      };
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      let cancelled = false;
      const append = (cur: string, chunk: string): string => (cur.length < OUTPUT_CAP_BYTES ? cur + chunk : cur);
      child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout = append(stdout, c); onOutput?.(c, 'stdout'); });
      child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr = append(stderr, c); onOutput?.(c, 'stderr'); });
      const timer = setTimeout(() => { timedOut = true; killGroup(); }, timeoutMs);
      const onAbort = (): void => { cancelled = true; killGroup(); };
      signal?.addEventListener('abort', onAbort, { once: true });
      child.on('error', (err) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        reject(new CommandFailedError({ command: shown, exitCode: null, stderr: redact(err.message, secrets), stdout: '', timedOut: false, reason: 'could not start' }));
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const out = redact(stdout, secrets);
        const errText = redact(stderr, secrets);
        if (code !== null && okExitCodes.includes(code) && !timedOut && !cancelled) {
          resolve({ stdout: out, stderr: errText, exitCode: code });
        } else {
          reject(new CommandFailedError({ command: shown, exitCode: code, stderr: errText, stdout: out, timedOut, ...(cancelled ? { reason: 'was cancelled' } : {}) }));
        }
      });
      child.stdin.on('error', () => { /* the child may exit before reading stdin */ });
      child.stdin.end(input ?? '');
    });
  }
}
