import type { Command } from 'commander';
import type { Tenant } from '../../core/schemas/tenant-schema.js';
import type { CliContext } from '../context.js';
import { usageError } from '../errors.js';
import { emit, formatTime, outputOption, renderFields, renderTable, type OutputFormat } from '../output.js';

function usageText(t: Tenant): string {
  const u = t.usage;
  return `${String(u.users)} users, ${String(u.volumes)} volumes, ${String(u.snapshots)} snapshots, ${String(u.grants)} grants, ${String(u.attachments)} attachments`;
}

/** The tenant list table. */
export function tenantTable(items: readonly Tenant[]): string {
  return renderTable(['name', 'users', 'volumes', 'snapshots', 'description'],
    items.map((t) => [t.name, String(t.usage.users), String(t.usage.volumes), String(t.usage.snapshots), t.description || '-']));
}

/** Every field of one tenant. */
export function tenantFields(t: Tenant): string {
  return renderFields([
    ['Name', t.name],
    ['ID', t.id],
    ['Description', t.description || '-'],
    ['Owns', usageText(t)],
    ...(t.deletingAt !== null ? [['Deleting', `since ${formatTime(t.deletingAt)} (stowage tenant delete ${t.name} --cascade carries on a failed delete)`] as [string, string]] : []),
    ['Created', formatTime(t.createdAt)],
    ['Updated', formatTime(t.updatedAt)],
  ]);
}

/** `stowage tenant …`: tenants (system admins only). */
export function register(program: Command, ctx: CliContext): void {
  const tenant = program.command('tenant').description('Tenants: who owns volumes, snapshots and grants (system admins)');

  tenant.command('create')
    .description('Create a tenant')
    .argument('<name>', 'tenant name')
    .option('--description <text>', 'what the tenant is')
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage tenant create acme --description "Acme Corp, project alpha"
  $ stowage user create alice --tenant acme --role member
  $ stowage token create laptop --user alice --expires 90d --out alice.token
`)
    .action(async (name: string, o: { description?: string; output: OutputFormat }, cmd: Command) => {
      const t = await ctx.client(cmd).createTenant({ name, ...(o.description !== undefined ? { description: o.description } : {}) });
      emit(ctx.stdout, o.output, t, () => tenantFields(t));
    });

  tenant.command('list')
    .alias('ls')
    .description('List tenants and what each owns')
    .addOption(outputOption())
    .action(async (o: { output: OutputFormat }, cmd: Command) => {
      const items = await ctx.client(cmd).listTenants();
      emit(ctx.stdout, o.output, items, () => (items.length ? tenantTable(items) : 'no tenants\n'));
    });

  tenant.command('show')
    .description('Show one tenant')
    .argument('<name>', 'tenant name or id')
    .addOption(outputOption())
    .action(async (name: string, o: { output: OutputFormat }, cmd: Command) => {
      const t = await ctx.client(cmd).getTenant(name);
      emit(ctx.stdout, o.output, t, () => tenantFields(t));
    });

  tenant.command('update')
    .description('Change a tenant\'s description')
    .argument('<name>', 'tenant name or id')
    .option('--description <text>', 'what the tenant is')
    .addOption(outputOption())
    .action(async (name: string, o: { description?: string; output: OutputFormat }, cmd: Command) => {
      if (o.description === undefined) throw usageError('VALIDATION_FAILED', 'nothing to change', ['pass --description']);
      const t = await ctx.client(cmd).updateTenant(name, { description: o.description });
      emit(ctx.stdout, o.output, t, () => tenantFields(t));
    });

  tenant.command('delete')
    .alias('rm')
    .description('Delete a tenant; refused while it owns anything unless --cascade')
    .argument('<name>', 'tenant name or id')
    .option('--cascade', 'also delete everything it owns (volumes, snapshots, grants, attachments, users, tokens) as one durable operation')
    .option('-y, --yes', 'do not ask for confirmation (required when stdin is not a terminal)')
    .addHelpText('after', `
Without --cascade a tenant that still owns something is refused (TENANT_NOT_EMPTY) with the counts.

Examples:
  $ stowage tenant delete acme --yes
  $ stowage tenant delete acme --cascade --yes
`)
    .action(async (name: string, o: { cascade?: boolean; yes?: boolean }, cmd: Command) => {
      const what = o.cascade ? `tenant ${name} and everything it owns` : `tenant ${name}`;
      if (!o.yes && !(await ctx.confirm(`Delete ${what}?`))) {
        throw usageError('VALIDATION_FAILED', `not deleting ${what} without confirmation`, ['pass --yes to delete without asking']);
      }
      const r = await ctx.client(cmd).deleteTenant(name, o.cascade === true);
      ctx.stdout.write(r?.operation ? `deleting tenant ${name} and everything it owns: operation ${r.operation.id} (stowage operation show ${r.operation.id})\n` : `tenant ${name} deleted\n`);
    });
}
