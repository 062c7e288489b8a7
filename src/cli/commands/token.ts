import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { USER_ROLES } from '../../core/permissions.js';
import type { CreateTokenInput, CreatedToken, Token, Whoami } from '../../core/schemas/tenant-schema.js';
import type { CliContext } from '../context.js';
import { usageError } from '../errors.js';
import { emit, formatTime, outputOption, renderFields, renderTable, type OutputFormat } from '../output.js';
import { durationArg } from '../parse.js';

/** The token list table (never a secret: the server keeps only hashes). */
export function tokenTable(items: readonly Token[]): string {
  return renderTable(['name', 'id', 'role', 'state', 'expires', 'last used'],
    items.map((t) => [t.name, t.id, t.role, t.state, t.expiresAt ? formatTime(t.expiresAt) : 'never', t.lastUsedAt ? formatTime(t.lastUsedAt) : 'never']));
}

/** Who the CLI's token is. */
export function whoamiFields(w: Whoami): string {
  return renderFields([
    ['User', w.user === null ? '(a token of no user)' : `${w.user}${w.kind === 'service' ? ' (service account)' : ''}`],
    ['Tenant', w.role === 'admin' ? `${w.tenant} (system admin: acts here, administers every tenant)` : w.tenant],
    ['Role', w.role],
    ['Token', `${w.token.name} (${w.token.id})`],
    ['Expires', w.token.expiresAt ? formatTime(w.token.expiresAt) : 'never'],
  ]);
}

/**
 * Creates the new 0600 file a token secret goes to, before the token exists: a path that exists
 * already (or cannot be written) is refused while there is still nothing to revoke. Null for `-`
 * (stdout).
 */
function reserveSecretFile(out: string): number | null {
  if (out === '-') return null;
  try {
    return openSync(out, 'wx', 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw usageError('VALIDATION_FAILED', code === 'EEXIST' ? `${out} exists; no token was created (a secret is never written over a file)` : `cannot write ${out}: ${(err as Error).message}; no token was created`);
  }
}

/** Writes the secret to the reserved file (or stdout), or removes the reserved file when there is no secret to write. */
function deliverSecret(ctx: CliContext, out: string, fd: number | null, secret: string | null): void {
  if (fd === null) {
    if (secret !== null) ctx.stdout.write(`${secret}\n`);
    return;
  }
  try {
    if (secret !== null) writeSync(fd, `${secret}\n`);
  } finally {
    closeSync(fd);
    if (secret === null) rmSync(out, { force: true });
  }
}

/** `stowage token …` and `stowage whoami`: API tokens (a user's own; an admin's for anyone). */
export function register(program: Command, ctx: CliContext): void {
  const token = program.command('token').description('API tokens: named, optionally expiring or narrowed; shown once, only a hash is kept');

  token.command('create')
    .description('Create an API token for yourself, or (admins) for a user or service account')
    .argument('<name>', 'token name (e.g. the machine it is for)')
    .requiredOption('--out <file>', 'write the secret to this new file (0600); "-" prints it on stdout, for piping into a secret store')
    .option('--user <user>', 'admins: the user (or service account) the token is for (default: yourself)')
    .option('--expires <duration>', 'expire after this long (e.g. 12h, 90d; at most a year; default: never)', durationArg)
    .addOption(new Option('--scope <role>', 'narrow the token to a lesser role than its user\'s (e.g. a reader token of a member)').choices(USER_ROLES))
    .addOption(outputOption())
    .addHelpText('after', `
The secret exists only in the create answer: it is written to --out and never shown again.

Examples:
  $ stowage token create laptop --out ~/stowage.token --expires 90d
  $ stowage token create ci --user ci-bot --out ci.token --scope member
  $ stowage login --api https://10.0.0.1:8750 --token-file ~/stowage.token --fingerprint sha256:…
`)
    .action(async (name: string, o: { out: string; user?: string; expires?: number; scope?: CreateTokenInput['scope']; output: OutputFormat }, cmd: Command) => {
      const body: CreateTokenInput = {
        name, ...(o.user !== undefined ? { user: o.user } : {}), ...(o.scope !== undefined ? { scope: o.scope } : {}),
        ...(o.expires !== undefined ? { expiresInSeconds: Math.ceil(o.expires / 1000) } : {}),
      };
      const fd = reserveSecretFile(o.out);
      let created: CreatedToken;
      try {
        created = await ctx.client(cmd).createToken(body);
      } catch (err) {
        deliverSecret(ctx, o.out, fd, null);
        throw err;
      }
      deliverSecret(ctx, o.out, fd, created.secret);
      if (o.out === '-') return;
      const t = created.token;
      emit(ctx.stdout, o.output, t, () => `token ${t.name} (${t.id}) of ${t.user ?? '?'}, role ${t.role}, expires ${t.expiresAt ? formatTime(t.expiresAt) : 'never'}: secret written to ${o.out} (0600)\n`);
    });

  token.command('list')
    .alias('ls')
    .description('List your tokens (admins: --user for anyone\'s)')
    .option('--user <user>', 'admins: this user\'s tokens')
    .addOption(outputOption())
    .action(async (o: { user?: string; output: OutputFormat }, cmd: Command) => {
      const items = await ctx.client(cmd).listTokens(o.user);
      emit(ctx.stdout, o.output, items, () => (items.length ? tokenTable(items) : 'no tokens\n'));
    });

  token.command('revoke')
    .description('Revoke a token: it stops working at once (within seconds on other replicas)')
    .argument('<token>', 'token id, or name among yours (or --user\'s)')
    .option('--user <user>', 'admins: revoke by name among this user\'s tokens')
    .action(async (ref: string, o: { user?: string }, cmd: Command) => {
      await ctx.client(cmd).revokeToken(ref, o.user);
      ctx.stdout.write(`token ${ref} revoked\n`);
    });

  program.command('whoami')
    .description('Show who the configured token is: user, tenant, role')
    .addOption(outputOption())
    .action(async (o: { output: OutputFormat }, cmd: Command) => {
      const w = await ctx.client(cmd).whoami();
      emit(ctx.stdout, o.output, w, () => whoamiFields(w));
    });
}
