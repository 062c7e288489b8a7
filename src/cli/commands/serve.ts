import type { Command } from 'commander';
import type { CliContext } from '../context.js';

/** `stowage serve`: runs the control plane through serveMain (the same code as `npm start`). */
export function register(program: Command, ctx: CliContext): void {
  program.command('serve')
    .description('Run the control plane: REST API, operation workers and backend probes (same as npm start)')
    .option('--config <file>', 'JSON config file (default: STOWAGE_CONFIG_FILE); STOWAGE_* variables override it')
    .addHelpText('after', `
On its first start the server creates the admin token, prints it once, and writes {url, token} to
the CLI config file (STOWAGE_CLI_CONFIG, else ~/.config/stowage/config.json).

Examples:
  $ stowage serve
  $ stowage serve --config /etc/stowage/config.json
  $ STOWAGE_PORT=9000 STOWAGE_DATA_DIR=/var/lib/stowage stowage serve
`)
    .action(async (opts: { config?: string }) => {
      // Loaded on demand: the server's dependencies are not needed by the client commands.
      const { serveMain } = await import('../../main.js');
      await serveMain(opts.config ? ['--config', opts.config] : [], { ...ctx.env });
      // serveMain has installed its SIGINT/SIGTERM handlers by now: stopping from here on drains cleanly.
      ctx.stderr.write('stowage serve: ready; Ctrl-C or SIGTERM drains running operations and stops\n');
    });
}
