import type { Command } from 'commander';
import type { Attachment } from '../../core/schemas/attachment-schema.js';
import type { Migration } from '../../core/schemas/migration-schema.js';
import type { MigrationKeyT, MigrationWithOperationT } from '../../core/schemas/migration-schema.js';
import type { StowageClient } from '../client.js';
import type { CliContext } from '../context.js';
import { usageError } from '../errors.js';
import { emit, formatTime, outputOption, renderFields, renderTable, type OutputFormat } from '../output.js';
import { assertSucceeded, waitForOperation } from '../wait.js';
import { addWaitFlags, attachmentShortTable, submittedNote, type WaitFlags } from './attachment.js';
import { allTenantsOption, tablesByTenant } from '../tenant-flags.js';

interface KeyFlags extends WaitFlags {
  id?: string;
  instance?: string;
  from?: string;
  to?: string;
}

/** The migration list table. */
export function migrationTable(items: readonly Migration[]): string {
  return renderTable(['id', 'instance', 'from', 'to', 'state', 'created', 'updated'],
    items.map((m) => [m.id, m.instance, m.fromHost, m.toHost, m.stateReason ? `${m.state} (${m.stateReason})` : m.state, formatTime(m.createdAt), formatTime(m.updatedAt)]));
}

/** Every field of one migration, with the instance's attachments on both hosts. */
export function migrationFields(m: Migration, attachments: readonly Attachment[]): string {
  const fields = renderFields([
    ['ID', m.id],
    ['Instance', m.instance],
    ['From', m.fromHost],
    ['To', m.toHost],
    ['State', m.stateReason ? `${m.state} (${m.stateReason})` : m.state],
    ['Created', formatTime(m.createdAt)],
    ['Updated', formatTime(m.updatedAt)],
  ]);
  return `${fields}\n${attachments.length ? `Attachments of ${m.instance}:\n${attachmentShortTable(attachments)}` : `${m.instance} has no live attachments on ${m.fromHost} or ${m.toHost}\n`}`;
}

/** The live attachments of the migrating instance on its source and destination hosts. */
async function instanceAttachments(client: StowageClient, m: Migration): Promise<Attachment[]> {
  const [from, to] = await Promise.all([client.listAttachments({ host: m.fromHost }), client.listAttachments({ host: m.toHost })]);
  return [...from, ...to].filter((a) => a.instance === m.instance);
}

/** `--instance/--from/--to` as a body, or a usage error naming what is missing. */
function keyOf(o: KeyFlags, verb: string): MigrationKeyT {
  const missing = (['instance', 'from', 'to'] as const).filter((k) => !o[k]).map((k) => `--${k}`);
  if (o.instance && o.from && o.to) return { instance: o.instance, from: o.from, to: o.to };
  throw usageError('VALIDATION_FAILED', `migration ${verb} needs --id, or --instance, --from and --to (missing ${missing.join(', ')})`);
}

/** Waits for a migration operation (unless --no-wait) and prints the migration with its attachments. */
async function finish(ctx: CliContext, client: StowageClient, res: MigrationWithOperationT, o: WaitFlags, verb: string): Promise<void> {
  if (!o.wait) {
    emit(ctx.stdout, o.output, res, () => migrationFields(res.migration, []));
    submittedNote(ctx, res.operation);
    return;
  }
  const m0 = res.migration;
  assertSucceeded(await waitForOperation(ctx, client, res.operation, { timeoutMs: o.timeout, label: `${verb} migration of ${m0.instance} ${m0.fromHost} → ${m0.toHost}` }));
  // The API has no GET of one migration: it is read back from the list.
  const [all, attachments] = await Promise.all([client.listMigrations(), instanceAttachments(client, m0)]);
  const m = all.find((x) => x.id === m0.id) ?? m0;
  emit(ctx.stdout, o.output, m, () => migrationFields(m, attachments));
}

/** `stowage migration …`: start, complete, abort, list. */
export function register(program: Command, ctx: CliContext): void {
  const migration = program.command('migration').description('Hand a VM\'s storage over during a live migration: start, complete, abort');

  addWaitFlags(migration.command('start')
    .description('Grant and connect every volume of an instance on the destination host (started there with -incoming)')
    .requiredOption('--instance <vm>', 'the migrating instance (VM) name')
    .requiredOption('--from <host>', 'the source host (name or id)')
    .requiredOption('--to <host>', 'the destination host (name or id)'))
    .addHelpText('after', `
Run it before migrating the VM: once it succeeded the disks are connected on both hosts. Then
migrate the VM and run \`stowage migration complete\` (or \`abort\` to undo the destination side).
With -o json: the migration.

Examples:
  $ stowage migration start --instance vm1 --from hv1 --to hv2
  $ stowage migration start --instance vm1 --from hv1 --to hv2 --no-wait -o json | jq -r .operation.id
`)
    .action(async (o: KeyFlags, cmd: Command) => {
      const client = ctx.client(cmd);
      await finish(ctx, client, await client.startMigration(keyOf(o, 'start')), o, 'start');
    });

  const verbs = [
    ['complete', 'Finish a migration: disconnect and revoke every volume on the source host', 'after the VM runs on the destination'],
    ['abort', 'Abort a migration: disconnect and revoke on the destination, the source keeps everything', 'when the VM stays on the source'],
  ] as const;
  for (const [verb, description, when] of verbs) {
    addWaitFlags(migration.command(verb)
      .description(description)
      .option('--id <id>', 'the migration id')
      .option('--instance <vm>', 'the migrating instance (with --from and --to, instead of --id)')
      .option('--from <host>', 'the source host')
      .option('--to <host>', 'the destination host'))
      .addHelpText('after', `
Run it ${when}. Finds the open migration of --instance from --from to --to, or takes --id.
With -o json: the migration.

Examples:
  $ stowage migration ${verb} --instance vm1 --from hv1 --to hv2
  $ stowage migration ${verb} --id mig-abcdefghijklmnopqrst
`)
      .action(async (o: KeyFlags, cmd: Command) => {
        if (o.id && (o.instance || o.from || o.to)) throw usageError('VALIDATION_FAILED', 'pass --id, or --instance/--from/--to, not both');
        const key = o.id ? null : keyOf(o, verb);
        const client = ctx.client(cmd);
        const id = o.id ?? (key ? (await client.findMigration(key)).id : '');
        await finish(ctx, client, await client.finishMigration(id, verb), o, verb);
      });
  }

  migration.command('list')
    .alias('ls')
    .description('List migrations')
    .addOption(allTenantsOption())
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage migration list
  $ stowage migration list -o json | jq '.[] | select(.state == "ready")'
`)
    .action(async (o: { allTenants?: boolean; output: OutputFormat }, cmd: Command) => {
      const client = ctx.client(cmd);
      const items = await client.listMigrations(o.allTenants === true ? { allTenants: true } : {});
      const text = await tablesByTenant(client, o.output, o.allTenants, items, migrationTable, 'no migrations\n');
      emit(ctx.stdout, o.output, items, () => text);
    });
}
