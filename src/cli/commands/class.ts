import { Option, type Command } from 'commander';
import type { CreateClassInput, StorageClass, UpdateClassInput } from '../../core/schemas/class-schema.js';
import { compact, nonEmpty } from '../../core/compact.js';
import { BACKEND_KINDS } from '../../core/states.js';
import { PLACEMENT_POLICIES } from '../../placement/placement.js';
import { CAPABILITIES, type Capability } from '../../core/capabilities.js';
import type { CliContext } from '../context.js';
import { usageError } from '../errors.js';
import { emit, formatTime, list, outputOption, renderFields, renderTable, type OutputFormat } from '../output.js';
import { collect } from '../parse.js';
import { addRestrictionFlags, restrictionBody, restrictionWords, type RestrictionFlags } from '../tenant-flags.js';

/** The class flags: the request's fields where the flag carries them as is, plus the list flags. */
type ClassFlags = Pick<CreateClassInput, 'description' | 'kind' | 'zone' | 'policy' | 'default' | 'offload'> & {
  requireTag?: string[];
  forbidTag?: string[];
  requireCapability?: string[];
  output: OutputFormat;
} & RestrictionFlags;

function addClassFlags(cmd: Command, update: boolean): Command {
  const replaces = update ? ' (on update, replaces the list; pass "" to clear)' : '';
  return addRestrictionFlags(cmd)
    .option('--description <text>', 'what the class is for')
    .addOption(new Option('--kind <kind>', 'what the class provisions').choices(BACKEND_KINDS))
    .option('--zone <zone>', `only backends in this zone${update ? ' ("" clears it)' : ''}`)
    .option('--require-tag <tag>', `only backends carrying this tag (repeatable)${replaces}`, collect)
    .option('--forbid-tag <tag>', `never backends carrying this tag (repeatable)${replaces}`, collect)
    .option('--require-capability <cap>', `only backends with this capability (repeatable)${replaces}; one of: ${CAPABILITIES.join(', ')}`, collect)
    .addOption(new Option('--policy <policy>', 'cheapest (lowest cost, then most free), spread (most free), pack (least free that fits)').choices(PLACEMENT_POLICIES))
    .option('--offload', 'clones may be offloaded to the backend (the default)')
    .option('--no-offload', 'clones are always copied on the host, even where the backend could offload')
    .addOption(outputOption());
}

/** Repeatable list flags; a single "" clears the list. */
function listFlag(values: string[] | undefined): string[] | undefined {
  if (values === undefined) return undefined;
  return [...new Set(values.filter((v) => v !== ''))];
}

function checkCapabilities(values: readonly string[] | undefined): Capability[] | undefined {
  if (values === undefined) return undefined;
  const known: readonly string[] = CAPABILITIES;
  for (const c of values) {
    if (!known.includes(c)) throw usageError('VALIDATION_FAILED', `unknown capability "${c}"; known capabilities: ${CAPABILITIES.join(', ')}`);
  }
  return values as Capability[];
}

function body(o: ClassFlags): Omit<UpdateClassInput, 'zone'> & { zone?: string } {
  const requireCapability = checkCapabilities(listFlag(o.requireCapability));
  const requireTag = listFlag(o.requireTag);
  const forbidTag = listFlag(o.forbidTag);
  return compact({
    description: o.description, kind: o.kind, zone: o.zone, requiredTags: requireTag, forbiddenTags: forbidTag,
    requiredCapabilities: requireCapability, policy: o.policy, default: o.default, offload: o.offload, ...restrictionBody(o),
  });
}

/** The class list table. */
export function classTable(items: readonly StorageClass[]): string {
  return renderTable(['name', 'default', 'policy', 'kind', 'zone', 'requires', 'forbids', 'capabilities', 'volumes'],
    items.map((c) => [c.name, c.isDefault ? 'yes' : '', c.policy, c.kind, c.zone ?? '-', list(c.requiredTags), list(c.forbiddenTags), list(c.requiredCapabilities), String(c.volumeCount)]));
}

/** Every field of one class. */
export function classFields(c: StorageClass): string {
  return renderFields([
    ['Name', c.name],
    ['ID', c.id],
    ['Description', c.description || '-'],
    ['Default', c.isDefault ? 'yes (used when a volume names no class)' : 'no'],
    ['Policy', c.policy],
    ['Kind', c.kind],
    ['Zone', c.zone ?? 'any'],
    ['Required tags', list(c.requiredTags)],
    ['Forbidden tags', list(c.forbiddenTags)],
    ['Required capabilities', list(c.requiredCapabilities)],
    ['Clones', c.offload ? 'offloaded to the backend where it can' : 'always copied on the host'],
    ['Volumes', String(c.volumeCount)],
    ...(c.tenants !== undefined ? [['Tenants', restrictionWords(c.tenants)] as [string, string]] : []),
    ['Created', formatTime(c.createdAt)],
    ['Updated', formatTime(c.updatedAt)],
  ]);
}

/** `stowage class …`: storage classes (create, list, show, update, delete). */
export function register(program: Command, ctx: CliContext): void {
  const cls = program.command('class').description('Storage classes: placement constraints and policy that volumes are created with');

  addClassFlags(cls.command('create')
    .description('Create a storage class')
    .argument('<name>', 'class name')
    .option('--default', 'make it the default class (used when a volume names none)'), false)
    .addHelpText('after', `
Examples:
  $ stowage class create gold --require-tag ssd --require-capability snapshot.offload --policy spread --default
  $ stowage class create bulk --require-tag hdd --forbid-tag retired --policy pack
  $ stowage volume create db1 --size 10G --class gold
`)
    .action(async (name: string, o: ClassFlags, cmd: Command) => {
      const b = body(o);
      // A create has no zone to clear: an empty --zone means none.
      const req: CreateClassInput = compact({ name, ...b, zone: nonEmpty(b.zone) });
      const c = await ctx.client(cmd).createClass(req);
      emit(ctx.stdout, o.output, c, () => classFields(c));
    });

  cls.command('list')
    .alias('ls')
    .description('List storage classes')
    .addOption(outputOption())
    .action(async (o: { output: OutputFormat }, cmd: Command) => {
      const items = await ctx.client(cmd).listClasses();
      emit(ctx.stdout, o.output, items, () => (items.length ? classTable(items) : 'no storage classes\n'));
    });

  cls.command('show')
    .description('Show one storage class')
    .argument('<name>', 'class name or id')
    .addOption(outputOption())
    .action(async (name: string, o: { output: OutputFormat }, cmd: Command) => {
      const c = await ctx.client(cmd).getClass(name);
      emit(ctx.stdout, o.output, c, () => classFields(c));
    });

  addClassFlags(cls.command('update')
    .description('Change a storage class (later placements only)')
    .argument('<name>', 'class name or id')
    .option('--default', 'make it the default class')
    .option('--no-default', 'stop it being the default class'), true)
    .addHelpText('after', `
Examples:
  $ stowage class update gold --policy pack
  $ stowage class update gold --zone ""          # any zone
  $ stowage class update bulk --default
  $ stowage class update gold --tenant acme --tenant beta   # only these tenants see and use it
`)
    .action(async (name: string, o: ClassFlags, cmd: Command) => {
      const b = body(o);
      if (Object.keys(b).length === 0) throw usageError('VALIDATION_FAILED', 'nothing to change', ['pass at least one of the flags shown by --help']);
      const c = await ctx.client(cmd).updateClass(name, b);
      emit(ctx.stdout, o.output, c, () => classFields(c));
    });

  cls.command('delete')
    .alias('rm')
    .description('Delete a storage class no volume uses')
    .argument('<name>', 'class name or id')
    .option('-y, --yes', 'do not ask for confirmation (required when stdin is not a terminal)')
    .action(async (name: string, o: { yes?: boolean }, cmd: Command) => {
      if (!o.yes && !(await ctx.confirm(`Delete storage class ${name}?`))) {
        throw usageError('VALIDATION_FAILED', `not deleting class ${name} without confirmation`, ['pass --yes to delete without asking']);
      }
      await ctx.client(cmd).deleteClass(name);
      ctx.stdout.write(`storage class ${name} deleted\n`);
    });
}
