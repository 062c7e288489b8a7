import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { Whoami } from '../../core/schemas/tenant-schema.js';
import { probeCertificate, type ApiPin } from '../../system/pinned-fetch.js';
import { StowageClient } from '../client.js';
import { cliConfigPath, resolveClientConfig, writeClientConfigFile } from '../client-config.js';
import type { CliContext, GlobalOptions } from '../context.js';
import { ApiError, CliError, usageError } from '../errors.js';

/**
 * Asks the API who the token is (`GET /v1/whoami`) before anything is saved: a token the API
 * refuses, or an API that does not answer, leaves the config file as it was.
 */
async function verifyToken(url: string, token: string, configPath: string, pin: ApiPin | undefined): Promise<Whoami> {
  const client = new StowageClient({ url, token, configPath, ...(pin ? { pin } : {}) });
  try {
    return await client.whoami();
  } catch (err) {
    if (err instanceof ApiError && err.code === 'UNAUTHORIZED') {
      throw new CliError('UNAUTHORIZED', `the API at ${url} refused this token (unknown, revoked or expired); nothing was saved`, {
        cause: err, hints: ['ask an admin for a new token: stowage token create NAME --user YOU --out FILE'],
      });
    }
    if (err instanceof ApiError && err.code === 'FORBIDDEN') {
      throw new CliError('FORBIDDEN', `the API at ${url} does not let this token say who it is (a host agent's credential cannot log in); nothing was saved`, { cause: err });
    }
    if (err instanceof CliError) throw new CliError(err.code, `${err.message}; nothing was saved`, { cause: err, hints: err.hints, details: err.details });
    throw err;
  }
}

function loggedIn(w: Whoami): string {
  return `${w.user ?? w.token.name} (tenant ${w.tenant}, role ${w.role})`;
}

/** `stowage login`: point the CLI at an API, pin its certificate and keep the token (config file, 0600). */
export function register(program: Command, ctx: CliContext): void {
  program.command('login')
    .description('Check a token with the API and save the address and token in the CLI config, pinning an https API\'s certificate')
    .option('--token-file <file>', 'file holding the API token (default: --token or STOWAGE_TOKEN)')
    .option('--trust', 'pin the certificate the API shows now without a --fingerprint to compare (trust on first use)')
    .addHelpText('after', `
The token is checked first (GET /v1/whoami): a token the API refuses, or an API that does not
answer, saves nothing. The config file is written 0600; its default directory is made 0700.

For an https API the CLI trusts exactly one certificate, the pinned one: compare the fingerprint
\`stowage serve\` printed on its first start (or that its operator gives you) with --fingerprint.
Nothing, and no token, is sent to a server whose certificate was not pinned or does not match.

Examples:
  $ stowage login --api https://10.0.0.1:8750 --token-file ~/stowage.token --fingerprint sha256:3f…
  $ stowage login --api https://10.0.0.1:8750 --token-file ~/stowage.token --trust
`)
    .action(async (o: { tokenFile?: string; trust?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      if (!g.api) throw usageError('VALIDATION_FAILED', 'pass --api URL (e.g. https://10.0.0.1:8750)');
      let token = g.token ?? ctx.env.STOWAGE_TOKEN;
      // The program's global --token-file has the same name, and commander gives it the flag wherever it stands.
      const tokenFile = o.tokenFile ?? g.tokenFile;
      if (tokenFile) {
        try {
          token = readFileSync(tokenFile, 'utf8').trim();
        } catch (err) {
          throw usageError('VALIDATION_FAILED', `cannot read the token file ${tokenFile}: ${(err as Error).message}`);
        }
      }
      if (!token) throw usageError('VALIDATION_FAILED', 'pass --token-file FILE (or --token / STOWAGE_TOKEN)');
      // Only the address, and the fingerprint's shape, are taken from here: the pin comes from the server below.
      const cfg = resolveClientConfig({ api: g.api, token, fingerprint: g.fingerprint }, { ...ctx.env, STOWAGE_CLI_CONFIG: '/nonexistent/stowage-login' });
      const path = cliConfigPath(ctx.env);
      // The default directory is the CLI's own (made 0700 even if it existed); one named by STOWAGE_CLI_CONFIG may be shared.
      const privateDir = !ctx.env.STOWAGE_CLI_CONFIG;
      if (!cfg.url.startsWith('https:')) {
        const who = await verifyToken(cfg.url, token, path, undefined);
        writeClientConfigFile(path, { url: cfg.url, token }, { privateDir });
        ctx.stderr.write(`warning: ${cfg.url} is plain HTTP: the token crosses the network in clear unless it is loopback\n`);
        ctx.stdout.write(`logged in as ${loggedIn(who)}; saved ${cfg.url} in ${path}\n`);
        return;
      }
      let seen: { certPem: string; fingerprint: string };
      try {
        seen = await probeCertificate(cfg.url);
      } catch (err) {
        throw new CliError(null, `cannot reach the Stowage API at ${cfg.url}: ${(err as Error).message}; nothing was saved`);
      }
      if (g.fingerprint && g.fingerprint !== seen.fingerprint) {
        throw new CliError('TLS_PIN_MISMATCH', `the API at ${cfg.url} shows certificate ${seen.fingerprint}, not ${g.fingerprint}; nothing was saved or sent`, {
          hints: ['check the address and the fingerprint with the server\'s operator; someone may be in between'],
        });
      }
      if (!g.fingerprint && !o.trust) {
        throw new CliError('TLS_UNPINNED', `the API at ${cfg.url} shows certificate ${seen.fingerprint}; nothing was saved or sent`, {
          hints: [`if that is the fingerprint the server printed: stowage login --api ${cfg.url} --token-file FILE --fingerprint ${seen.fingerprint}`, 'or --trust to pin it unchecked'],
        });
      }
      // The token goes only to the certificate just pinned.
      const who = await verifyToken(cfg.url, token, path, { fingerprint: seen.fingerprint, certPem: seen.certPem });
      writeClientConfigFile(path, { url: cfg.url, token, apiFingerprint: seen.fingerprint, apiCertPem: seen.certPem }, { privateDir });
      ctx.stdout.write(`logged in as ${loggedIn(who)}; pinned ${seen.fingerprint} for ${cfg.url}; saved in ${path}\n`);
    });
}
