import { Option, type Command } from 'commander';
import { USER_ROLES } from '../../core/permissions.js';
import type { User } from '../../core/schemas/tenant-schema.js';
import type { CliContext } from '../context.js';
import { usageError } from '../errors.js';
import { emit, formatTime, outputOption, renderFields, renderTable, type OutputFormat } from '../output.js';

/** The user list table. */
export function userTable(items: readonly User[]): string {
  return renderTable(['name', 'tenant', 'role', 'kind', 'tokens', 'description'],
    items.map((u) => [u.name, u.tenant ?? '(system)', u.role, u.kind, String(u.tokens), u.description || '-']));
}

/** Every field of one user. */
export function userFields(u: User): string {
  return renderFields([
    ['Name', u.name],
    ['ID', u.id],
    ['Tenant', u.tenant ?? 'none (system admin)'],
    ['Role', u.role],
    ['Kind', u.kind === 'service' ? 'service account' : 'user'],
    ['Description', u.description || '-'],
    ['Live tokens', String(u.tokens)],
    ['Created', formatTime(u.createdAt)],
    ['Updated', formatTime(u.updatedAt)],
  ]);
}

/** `stowage user …`: users and service accounts (system admins only). */
export function register(program: Command, ctx: CliContext): void {
  const user = program.command('user').description('Users and service accounts: admins of the system, members and readers of one tenant');

  user.command('create')
    .description('Create a user (or, with --service, a service account for automation)')
    .argument('<name>', 'login name, unique in the system')
    .addOption(new Option('--role <role>', 'admin: the whole system (no tenant); member: its tenant\'s volumes; reader: read-only').choices(USER_ROLES).makeOptionMandatory())
    .option('--tenant <tenant>', 'the tenant a member or reader belongs to')
    .option('--service', 'a service account (for automation) rather than a person')
    .option('--description <text>', 'who or what it is')
    .addOption(outputOption())
    .addHelpText('after', `
A user has no token until one is made for it: stowage token create NAME --user USER

Examples:
  $ stowage user create alice --tenant acme --role member
  $ stowage user create ci --tenant acme --role member --service --description "the build pipeline"
  $ stowage user create ops2 --role admin
`)
    .action(async (name: string, o: { role: User['role']; tenant?: string; service?: boolean; description?: string; output: OutputFormat }, cmd: Command) => {
      const u = await ctx.client(cmd).createUser({
        name, role: o.role, ...(o.tenant !== undefined ? { tenant: o.tenant } : {}), ...(o.service ? { kind: 'service' as const } : {}),
        ...(o.description !== undefined ? { description: o.description } : {}),
      });
      emit(ctx.stdout, o.output, u, () => userFields(u));
    });

  user.command('list')
    .alias('ls')
    .description('List users')
    .option('--tenant <tenant>', 'only this tenant\'s')
    .addOption(outputOption())
    .action(async (o: { tenant?: string; output: OutputFormat }, cmd: Command) => {
      const items = await ctx.client(cmd).listUsers(o.tenant);
      emit(ctx.stdout, o.output, items, () => (items.length ? userTable(items) : 'no users\n'));
    });

  user.command('show')
    .description('Show one user')
    .argument('<name>', 'user name or id')
    .addOption(outputOption())
    .action(async (name: string, o: { output: OutputFormat }, cmd: Command) => {
      const u = await ctx.client(cmd).getUser(name);
      emit(ctx.stdout, o.output, u, () => userFields(u));
    });

  user.command('update')
    .description('Change a user\'s role (member ↔ reader) or description')
    .argument('<name>', 'user name or id')
    .addOption(new Option('--role <role>', 'the new role').choices(USER_ROLES))
    .option('--description <text>', 'who or what it is')
    .addOption(outputOption())
    .action(async (name: string, o: { role?: User['role']; description?: string; output: OutputFormat }, cmd: Command) => {
      if (o.role === undefined && o.description === undefined) throw usageError('VALIDATION_FAILED', 'nothing to change', ['pass --role or --description']);
      const u = await ctx.client(cmd).updateUser(name, { ...(o.role !== undefined ? { role: o.role } : {}), ...(o.description !== undefined ? { description: o.description } : {}) });
      emit(ctx.stdout, o.output, u, () => userFields(u));
    });

  user.command('delete')
    .alias('rm')
    .description('Delete a user; its tokens stop working')
    .argument('<name>', 'user name or id')
    .option('-y, --yes', 'do not ask for confirmation (required when stdin is not a terminal)')
    .action(async (name: string, o: { yes?: boolean }, cmd: Command) => {
      if (!o.yes && !(await ctx.confirm(`Delete user ${name} and revoke its tokens?`))) {
        throw usageError('VALIDATION_FAILED', `not deleting user ${name} without confirmation`, ['pass --yes to delete without asking']);
      }
      await ctx.client(cmd).deleteUser(name);
      ctx.stdout.write(`user ${name} deleted; its tokens no longer work\n`);
    });
}
