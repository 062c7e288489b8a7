import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { StowageClient } from './client.js';
import { resolveClientConfig } from './client-config.js';
import type { OutStream } from './output.js';
import { usageError } from './errors.js';

/** What every command group gets: its streams, environment, an API client, Ctrl-C and prompts. */
export interface CliContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: OutStream;
  readonly stderr: OutStream;
  /** A client configured from the command's `--api`/`--token`, the environment or the config file. */
  client(cmd: Command): StowageClient;
  /** A signal aborted by Ctrl-C (SIGINT); the handler is installed on first use only. */
  interrupt(): AbortSignal;
  /** Asks a yes/no question on the terminal; false (without asking) when stdin is not a terminal. */
  confirm(question: string): Promise<boolean>;
  /** The clock, in ms since the epoch. */
  now(): number;
}

/** Global options of the program, read by `client()`. */
export interface GlobalOptions {
  readonly api?: string;
  readonly token?: string;
  readonly tokenFile?: string;
  readonly fingerprint?: string;
}

/** True for a terminal; a pipe or file has no isTTY at all, whatever the typings say. */
function isTerminal(stream: { readonly isTTY?: boolean }): boolean {
  return stream.isTTY === true;
}

/**
 * A reader that went away (`stowage volume create --help | head`) is no failure of ours: exit 0 at
 * once, as the output nobody reads is all that is lost, instead of dying on an unhandled EPIPE.
 */
function exitQuietlyOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

/** The context of the real process: process.stdout/stderr/env and SIGINT. */
export function processContext(): CliContext {
  let controller: AbortController | null = null;
  exitQuietlyOnClosedPipe(process.stdout);
  exitQuietlyOnClosedPipe(process.stderr);
  return {
    env: process.env,
    stdout: { write: (t) => { process.stdout.write(t); }, isTTY: isTerminal(process.stdout) },
    stderr: { write: (t) => { process.stderr.write(t); }, isTTY: isTerminal(process.stderr) },
    client: (cmd) => new StowageClient(resolveClientConfig(withTokenFile(cmd.optsWithGlobals<GlobalOptions>()), process.env)),
    interrupt: () => {
      if (!controller) {
        const c = new AbortController();
        controller = c;
        process.on('SIGINT', () => {
          // A second Ctrl-C while a command is still cleaning up leaves at once.
          if (c.signal.aborted) process.exit(130);
          c.abort();
        });
      }
      return controller.signal;
    },
    confirm: async (question) => {
      if (!process.stdin.isTTY) return false;
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      try {
        return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
      } finally {
        rl.close();
      }
    },
    now: () => Date.now(),
  };
}

/** Sleeps `ms`, resolving early (not rejecting) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) { resolve(); return; }
    const onAbort = (): void => { clearTimeout(t); resolve(); };
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The global flags with `--token-file`'s token in `token` (an unreadable or empty file is a usage error, nothing is sent). */
export function withTokenFile(g: GlobalOptions): GlobalOptions {
  if (g.tokenFile === undefined || g.token !== undefined) return g;
  let token: string;
  try {
    token = readFileSync(g.tokenFile, 'utf8').trim();
  } catch (err) {
    throw usageError('VALIDATION_FAILED', `cannot read the token file ${g.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (token === '') throw usageError('VALIDATION_FAILED', `the token file ${g.tokenFile} is empty`);
  return { ...g, token };
}
