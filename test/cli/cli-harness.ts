import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type Config } from '../../src/config/config.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { ensureBuilt } from '../helpers/server.js';

/** Repository root (where bin/ and dist/ live). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI_ENTRY = join(REPO_ROOT, 'bin', 'stowage.js');
const BUILT_MAIN = join(REPO_ROOT, 'dist', 'cli', 'main.js');

/** Longest one CLI run may take before it is killed, in ms. */
const RUN_LIMIT_MS = 60_000;

/** Quotes one word for `sh -c` (used only for the `script` command line of terminal tests). */
function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** What one CLI run printed and how it exited. */
export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtimeMs(p));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Makes sure dist/ holds the CLI built from the current src/cli (scripts/test.mjs builds before
 * vitest; this covers running vitest directly). Builds through ensureBuilt, under the one build
 * lock every test file shares, so two files never run tsc into dist/ at the same time.
 */
export async function ensureCliBuilt(): Promise<void> {
  await ensureBuilt();
  let builtMs = 0;
  try {
    builtMs = statSync(BUILT_MAIN).mtimeMs;
  } catch {
    builtMs = 0;
  }
  if (builtMs < newestMtimeMs(join(REPO_ROOT, 'src', 'cli'))) throw new Error('could not build the CLI: run `npm run build`');
}

/** A port nothing listens on (bound once, then released). */
export async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => { srv.listen(0, '127.0.0.1', resolve); });
  const addr = srv.address();
  await new Promise<void>((resolve) => { srv.close(() => { resolve(); }); });
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

/** A CLI process that keeps running (`--follow`, `top`): its output so far, waits, and Ctrl-C. */
export class RunningCli {
  stdout = '';
  stderr = '';
  private readonly exited: Promise<CliResult>;

  constructor(private readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { this.stdout += d; });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { this.stderr += d; });
    this.exited = new Promise((resolve) => {
      child.on('close', (code) => { resolve({ code, stdout: this.stdout, stderr: this.stderr }); });
    });
  }

  /** Resolves once the output satisfies `predicate`; rejects if the process exits or `limitMs` passes first. */
  async waitForOutput(predicate: (stdout: string, stderr: string) => boolean, limitMs = 20_000): Promise<void> {
    const deadline = Date.now() + limitMs;
    while (!predicate(this.stdout, this.stderr)) {
      if (this.child.exitCode !== null) throw new Error(`the CLI exited (${this.child.exitCode}) first:\n${this.stdout}\n${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`output never matched; got:\n${this.stdout}\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Resolves when the process exits on its own. */
  done(): Promise<CliResult> {
    return this.exited;
  }

  /** Sends SIGINT (Ctrl-C) to this process, by its PID, and returns how it exited. */
  interrupt(): Promise<CliResult> {
    this.child.kill('SIGINT');
    return this.exited;
  }
}

/**
 * A real Stowage server in this process (SQLite in a temp dir, free port) and a CLI config file
 * pointing at it; runs the built `stowage` command as a child process against it.
 */
export class CliSession {
  private constructor(
    readonly server: RunningServer,
    readonly dir: string,
    readonly configPath: string,
    readonly token: string,
  ) {}

  /** Starts the server (with optional config `overrides`) and writes the CLI config with its real URL and the admin token. */
  static async start(overrides: Partial<Config> = {}): Promise<CliSession> {
    await ensureCliBuilt();
    const dir = mkdtempSync(join(tmpdir(), `stowage-cli-${process.pid}-`));
    const dataDir = join(dir, 'data');
    const server = await startServer(loadConfig(undefined, {}, {
      // Probes slowed to a minute so CLI output shows only the states a test set; the probe on its shipped interval: test/defaults/backend-probe.ts.
      dataDir, port: 0, cliConfigPath: join(dir, 'server-cli.json'), logLevel: 'silent', probeIntervalMs: 60_000, ...overrides,
    }));
    const { token } = JSON.parse(readFileSync(join(dir, 'server-cli.json'), 'utf8')) as { token: string };
    const configPath = join(dir, 'cli.json');
    writeFileSync(configPath, JSON.stringify({ url: server.url, token }), { mode: 0o600 });
    return new CliSession(server, dir, configPath, token);
  }

  /** The environment of a CLI run: nothing inherited that could point it elsewhere. */
  env(extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.STOWAGE_URL;
    delete env.STOWAGE_TOKEN;
    delete env.XDG_CONFIG_HOME;
    return { ...env, STOWAGE_CLI_CONFIG: this.configPath, HOME: this.dir, ...extra };
  }

  /** Runs `stowage ...args` to completion. */
  async run(args: readonly string[], extraEnv: Readonly<Record<string, string>> = {}): Promise<CliResult> {
    const child = this.spawn(args, extraEnv);
    // A hung server must fail the test, not hang the run: the child is killed (by its PID) after a minute.
    const limit = setTimeout(() => { child.kill('SIGKILL'); }, RUN_LIMIT_MS);
    try {
      return await new RunningCli(child).done();
    } finally {
      clearTimeout(limit);
    }
  }

  /** Runs `stowage ...args` on a pseudo-terminal (util-linux `script`); stdout and stderr both land in `stdout`. */
  async runOnTerminal(args: readonly string[], opts: { interruptAfterMs?: number } = {}): Promise<CliResult> {
    const cli = [process.execPath, CLI_ENTRY, ...args].map(shellQuote).join(' ');
    // `timeout -s INT` plays the user's Ctrl-C for commands that run until interrupted.
    const line = opts.interruptAfterMs ? `timeout --preserve-status -s INT ${opts.interruptAfterMs / 1000} ${cli}` : cli;
    const child = spawn('script', ['-qfec', line, '/dev/null'], { cwd: this.dir, env: { ...this.env(), TERM: 'xterm' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const limit = setTimeout(() => { child.kill('SIGKILL'); }, RUN_LIMIT_MS);
    try {
      return await new RunningCli(child).done();
    } finally {
      clearTimeout(limit);
    }
  }

  /** Starts `stowage ...args` without waiting for it to end. */
  start(args: readonly string[], extraEnv: Readonly<Record<string, string>> = {}): RunningCli {
    return new RunningCli(this.spawn(args, extraEnv));
  }

  private spawn(args: readonly string[], extraEnv: Readonly<Record<string, string>>): ChildProcess {
    return spawn(process.execPath, [CLI_ENTRY, ...args], { cwd: this.dir, env: this.env(extraEnv), stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Runs the command and parses its stdout as JSON (failing with its stderr otherwise). */
  async json<T>(args: readonly string[]): Promise<T> {
    const r = await this.run([...args, '-o', 'json']);
    if (r.code !== 0) throw new Error(`stowage ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  /** Stops the server and removes the temp dir. */
  async stop(): Promise<void> {
    await this.server.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
