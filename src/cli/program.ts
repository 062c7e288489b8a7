import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { StowageError } from '../core/errors.js';
import type { CliContext } from './context.js';
import { CliError, USAGE_EXIT_CODE, formatCliError } from './errors.js';
import { safeStream } from './output.js';

/** A command group: `src/cli/commands/<name>.ts` exporting `register(program, ctx)`. */
export interface CommandGroup {
  register(program: Command, ctx: CliContext): void;
}

/**
 * The command groups, in help order. Each name is a module `src/cli/commands/<name>.ts` that
 * exports `register(program, ctx)`. To add a group, write that file and add ONE line here.
 */
export const COMMAND_GROUPS: readonly string[] = [
  'serve',
  'backend',
  'volume',
  'snapshot',
  'host',
  'attachment',
  'migration',
  'class',
  'quota',
  'operation',
  'events',
  'retention',
  'agent',
  'login',
  'node',
  'tenant',
  'user',
  'token',
];

const EXAMPLES = `
Configuration:
  The API URL and token come from --api/--token, else STOWAGE_URL/STOWAGE_TOKEN, else the JSON file
  at STOWAGE_CLI_CONFIG, else $XDG_CONFIG_HOME/stowage/config.json or ~/.config/stowage/config.json
  ({"url", "token"}; the server writes it on its first start).

Examples:
  $ stowage serve                                  # run the control plane (same as npm start)
  $ stowage backend create fast --driver dir:///srv/fast --cost 5 --tag ssd
  $ stowage backend top                            # live capacity of every backend
  $ stowage volume create db1 --size 10G --tag ssd
  $ stowage volume create db2 --size 10G --dry-run # show every backend's verdict, change nothing
  $ stowage volume list -o json
  $ stowage events --follow
`;

function cliVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Global options that take a value (`--api URL`): the word after one is not a command. */
const VALUED_OPTIONS: ReadonlySet<string> = new Set(['--api', '--token', '--token-file', '--fingerprint']);

/**
 * The command group `args` run (`volume` in `stowage --api URL volume list`), or null when they name
 * none (help, a version, a typo): then every group is loaded, for the help text or commander's error.
 */
export function commandGroupOf(args: readonly string[]): string | null {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') return null;
    if (a.startsWith('-')) {
      if (VALUED_OPTIONS.has(a)) i++;
      continue;
    }
    return COMMAND_GROUPS.includes(a) ? a : null;
  }
  return null;
}

/**
 * Builds the `stowage` program with the command groups registered on it: with `args`, only the group
 * they run (a CLI call loads its own command's modules, not the server's nor every other command's:
 * 290 ms per call before, most of it module loading); without, or when they name no group, all.
 */
export async function buildProgram(ctx: CliContext, args?: readonly string[]): Promise<Command> {
  const program = new Command('stowage')
    .description('Stowage: a storage control plane. Manage backends, volumes, operations and events through its REST API.')
    .version(cliVersion(), '-V, --version')
    .option('--api <url>', 'API base URL (default: STOWAGE_URL, then the CLI config file, then http://127.0.0.1:8750)')
    .option('--token <token>', 'API token (default: STOWAGE_TOKEN, then the CLI config file)')
    .option('--token-file <file>', 'read the API token from this file (keeps it out of argv and shell history), e.g. one `stowage token create --out` wrote')
    .option('--fingerprint <sha256:hex>', 'pin of an https API\'s certificate for this command (default: STOWAGE_FINGERPRINT, then the CLI config file)')
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({
      writeOut: (s) => { ctx.stdout.write(s); },
      writeErr: (s) => { ctx.stderr.write(s); },
    })
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', EXAMPLES);
  const only = args ? commandGroupOf(args) : null;
  for (const name of only ? [only] : COMMAND_GROUPS) {
    const mod = (await import(`./commands/${name}.js`)) as Partial<CommandGroup>;
    if (typeof mod.register !== 'function') throw new Error(`src/cli/commands/${name}.ts does not export register(program, ctx)`);
    mod.register(program, ctx);
  }
  return program;
}

/**
 * Runs the CLI on `args` (without node and the script) and returns the exit code: 0 on success,
 * 1 when the API or an operation reported an error (printed as `code: message`), 2 for usage errors.
 */
export async function runCli(args: readonly string[], rawCtx: CliContext): Promise<number> {
  // Every byte a command prints passes through safeStream, so text from the API cannot drive the
  // operator's terminal whichever command, table or error line prints it.
  const ctx: CliContext = { ...rawCtx, stdout: safeStream(rawCtx.stdout), stderr: safeStream(rawCtx.stderr) };
  try {
    const program = await buildProgram(ctx, args);
    await program.parseAsync([...args], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : USAGE_EXIT_CODE;
    if (err instanceof CliError) {
      ctx.stderr.write(`${formatCliError(err)}\n`);
      return err.exitCode;
    }
    if (err instanceof StowageError) {
      ctx.stderr.write(`${err.code}: ${err.message}\n`);
      return 1;
    }
    ctx.stderr.write(`INTERNAL: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}
