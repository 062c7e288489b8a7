import { Option, type Command } from 'commander';
import type { Backend, CreateBackendInput, UpdateBackendInput } from '../../core/schemas/backend-schema.js';
import { compact } from '../../core/compact.js';
import { BACKEND_ROLES, type BackendRole } from '../../core/states.js';
import { CAPABILITIES, type Capability } from '../../core/capabilities.js';
import type { CliContext } from '../context.js';
import { usageError } from '../errors.js';
import { ago, emit, formatTime, list, outputOption, renderFields, renderTable, size, type OutputFormat } from '../output.js';
import { collect, collectCapability, collectKeyValue, intArg, numberArg, type CapabilityEdits } from '../parse.js';
import { waitForOperation, assertSucceeded, DEFAULT_WAIT_TIMEOUT_MS, isFinished } from '../wait.js';
import { registerTop } from './backend-top.js';
import { addRestrictionFlags, restrictionBody, restrictionWords, type RestrictionFlags } from '../tenant-flags.js';

/** Flags shared by `backend create` and `backend update`. */
interface PlacementFlags extends RestrictionFlags {
  role?: BackendRole;
  cost?: number;
  tag?: string[];
  zone?: string;
  overcommit?: number;
  reservedPercent?: number;
  capability?: CapabilityEdits;
  output: OutputFormat;
}

interface CreateFlags extends PlacementFlags {
  driver: string;
  node?: string;
  option?: Record<string, string>;
  disabled?: boolean;
  wait: boolean;
}

interface UpdateFlags extends PlacementFlags {
  enabled?: boolean;
  disabled?: boolean;
}

interface OutputFlags {
  output: OutputFormat;
}

function addPlacementFlags(cmd: Command): Command {
  return addRestrictionFlags(cmd)
    .addOption(new Option('--role <role>', 'primary (holds volumes) or repository (holds offloaded snapshots)').choices(BACKEND_ROLES))
    .option('--cost <n>', 'cost units per GiB-month; the cheapest policy prefers low cost', intArg(0, 1_000_000))
    .option('--tag <tag>', 'a tag volumes can require (repeat for several; on update, replaces the list)', collect)
    .option('--zone <zone>', 'failure zone (on update, "" clears it)')
    .option('--overcommit <ratio>', 'how far thin volumes may overcommit the physical size (1 to 100)', numberArg(1, 100))
    .option('--reserved-percent <p>', 'percent of the total kept free (0 to <100)', numberArg(0, 100, true))
    .option('--capability <+cap|-cap>', `add (+) or remove (-) a capability the probe reports (repeatable); one of: ${CAPABILITIES.join(', ')}`, collectCapability)
    .addOption(outputOption());
}

function overrides(edits: CapabilityEdits | undefined): { add: Capability[]; remove: Capability[] } | undefined {
  if (!edits) return undefined;
  const known: readonly string[] = CAPABILITIES;
  const check = (names: readonly string[]): Capability[] => names.map((n) => {
    if (!known.includes(n)) throw usageError('VALIDATION_FAILED', `unknown capability "${n}"; known capabilities: ${CAPABILITIES.join(', ')}`);
    return n as Capability;
  });
  return { add: check(edits.add), remove: check(edits.remove) };
}

function placementBody(o: PlacementFlags): UpdateBackendInput {
  return compact({
    role: o.role,
    cost: o.cost,
    tags: o.tag && [...new Set(o.tag)],
    zone: o.zone,
    overcommitRatio: o.overcommit,
    reservedPercent: o.reservedPercent,
    capabilityOverrides: overrides(o.capability),
    ...restrictionBody(o),
  });
}

/** The backend list table. */
export function backendTable(items: readonly Backend[], nowMs: number): string {
  return renderTable(
    ['name', 'state', 'role', 'node', 'driver', 'cost', 'zone', 'tags', 'volumes', 'usable', 'total', 'probed'],
    items.map((b) => [b.name, b.state, b.role, b.node ?? '-', b.driver, String(b.cost), b.zone || '-', list(b.tags), String(b.volumeCount),
      size(b.capacity.usableBytes), size(b.capacity.totalBytes), ago(b.lastProbeAt, nowMs)]),
  );
}

/** Every field of one backend, for people. */
export function backendFields(b: Backend, nowMs: number): string {
  const c = b.capacity;
  const ov = [...b.capabilityOverrides.add.map((x) => `+${x}`), ...b.capabilityOverrides.remove.map((x) => `-${x}`)];
  return renderFields([
    ['Name', b.name],
    ['ID', b.id],
    ['Driver', b.driver],
    ['Node', b.node ?? '- (runs in the control plane)'],
    ['Kind', b.kind],
    ['Role', b.role],
    ['State', b.stateReason ? `${b.state} (${b.stateReason})` : b.state],
    ['Cost', `${b.cost} per GiB-month`],
    ['Zone', b.zone || '-'],
    ['Tags', list(b.tags)],
    ['Overcommit', `${b.overcommitRatio}x`],
    ['Reserved', `${b.reservedPercent}%`],
    ['Options', Object.keys(b.options).length ? Object.entries(b.options).map(([k, v]) => `${k}=${v}`).join(' ') : '-'],
    ['Capabilities', list(b.capabilities)],
    ['Overrides', ov.length ? ov.join(' ') : '-'],
    ['Capacity', [
      `total ${size(c.totalBytes)}, free ${size(c.freeBytes)}, used ${size(c.usedBytes)}`,
      `provisioned ${size(c.provisionedBytes)}, claimed ${size(c.claimedBytes)}, usable ${size(c.usableBytes)}`,
    ].join('\n')],
    ['Volumes', String(b.volumeCount)],
    ['Tenants', restrictionWords(b.tenants)],
    ['Last probe', b.lastProbeAt ? `${formatTime(b.lastProbeAt)} (${ago(b.lastProbeAt, nowMs)})` : 'never'],
    ['Created', formatTime(b.createdAt)],
    ['Updated', formatTime(b.updatedAt)],
  ]);
}

/** `stowage backend …`: register, list, show, update, enable, disable, refresh, delete, top. */
export function register(program: Command, ctx: CliContext): void {
  const backend = program.command('backend').description('Register and manage storage backends');
  const show = (format: OutputFormat, b: Backend): void => { emit(ctx.stdout, format, b, () => backendFields(b, ctx.now())); };

  addPlacementFlags(backend.command('create')
    .description('Register a backend; it is probed at once (offline, with the reason, if the probe fails)')
    .argument('<name>', 'backend name')
    .requiredOption('--driver <uri>', 'driver URI; the scheme picks the driver, e.g. dir:///srv/volumes'))
    .option('--option <key=value>', 'driver option (repeatable)', collectKeyValue)
    .option('--node <name>', 'the storage node its driver runs on (see `stowage node create`); default: the control plane itself')
    .option('--disabled', 'register it disabled: no new volumes are placed on it')
    .option('--no-wait', 'do not wait for the registration operation')
    .addHelpText('after', `
Examples:
  $ stowage backend create fast --driver dir:///srv/fast --cost 5 --tag ssd --zone a
  $ stowage backend create bulk --driver dir:///srv/bulk --overcommit 2 --reserved-percent 10
  $ stowage backend create nocopy --driver dir:///srv/x --capability -thin --capability +snapshot.offload
  $ stowage backend create ssd1 --node sn1 --driver 'tgt://10.0.0.5:3260?backing=btrfs:///srv/pool&control=7'
`)
    .action(async (name: string, o: CreateFlags, cmd: Command) => {
      const client = ctx.client(cmd);
      const body: CreateBackendInput = compact({
        name, driver: o.driver, ...placementBody(o),
        options: o.option,
        node: o.node,
        enabled: o.disabled ? false : undefined,
      });
      const res = await client.createBackend(body);
      if (o.wait && res.operation && !isFinished(res.operation)) {
        assertSucceeded(await waitForOperation(ctx, client, res.operation, { timeoutMs: DEFAULT_WAIT_TIMEOUT_MS }));
      }
      const b = o.wait ? await client.getBackend(res.backend.id) : res.backend;
      emit(ctx.stdout, o.output, o.wait ? b : res, () => backendFields(b, ctx.now()));
      if (b.state === 'offline' || b.state === 'error') ctx.stderr.write(`warning: backend ${b.name} is ${b.state}: ${b.stateReason ?? 'no reason given'}\n`);
    });

  backend.command('list')
    .alias('ls')
    .description('List backends with state and capacity')
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage backend list
  $ stowage backend list -o json | jq '.[] | {name, usable: .capacity.usableBytes}'
`)
    .action(async (o: OutputFlags, cmd: Command) => {
      const items = await ctx.client(cmd).listBackends();
      emit(ctx.stdout, o.output, items, () => (items.length ? backendTable(items, ctx.now()) : 'no backends; register one with `stowage backend create`\n'));
    });

  backend.command('show')
    .description('Show one backend: settings, capabilities and capacity')
    .argument('<name>', 'backend name or id')
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage backend show local
  $ stowage backend show bk-abcdefghijklmnopqrst -o json
`)
    .action(async (name: string, o: OutputFlags, cmd: Command) => {
      show(o.output, await ctx.client(cmd).getBackend(name));
    });

  addPlacementFlags(backend.command('update')
    .description('Change a backend\'s role, cost, tags, zone, overcommit, reserve or capability overrides')
    .argument('<name>', 'backend name or id'))
    .option('--enabled', 'also enable it for new volumes')
    .option('--disabled', 'also stop placing new volumes on it')
    .addHelpText('after', `
Examples:
  $ stowage backend update fast --cost 3 --tag ssd --tag nvme
  $ stowage backend update fast --zone ""          # clear the zone
  $ stowage backend update fast --capability -thin --disabled
  $ stowage backend update fast --tenant acme     # only acme's volumes are placed on it
  $ stowage backend update fast --shared          # every tenant's again
`)
    .action(async (name: string, o: UpdateFlags, cmd: Command) => {
      if (o.enabled && o.disabled) throw usageError('VALIDATION_FAILED', 'pass --enabled or --disabled, not both');
      const body = placementBody(o);
      if (Object.keys(body).length === 0 && !o.enabled && !o.disabled) {
        throw usageError('VALIDATION_FAILED', 'nothing to change; pass at least one of --role, --cost, --tag, --zone, --overcommit, --reserved-percent, --capability, --tenant, --shared, --enabled, --disabled');
      }
      const client = ctx.client(cmd);
      let b = Object.keys(body).length ? await client.updateBackend(name, body) : await client.getBackend(name);
      if (o.enabled || o.disabled) b = await client.backendAction(b.id, o.enabled ? 'enable' : 'disable');
      show(o.output, b);
    });

  const verbs = [
    ['enable', 'Enable a backend for new volumes'],
    ['disable', 'Stop placing new volumes on a backend (existing volumes stay)'],
    ['refresh', 'Probe a backend now and show its fresh state and capacity'],
  ] as const;
  for (const [verb, description] of verbs) {
    backend.command(verb)
      .description(description)
      .argument('<name>', 'backend name or id')
      .addOption(outputOption())
      .addHelpText('after', `\nExample:\n  $ stowage backend ${verb} fast\n`)
      .action(async (name: string, o: OutputFlags, cmd: Command) => {
        show(o.output, await ctx.client(cmd).backendAction(name, verb));
      });
  }

  backend.command('delete')
    .alias('rm')
    .description('Delete a backend that holds no volumes (its data directory is left alone)')
    .argument('<name>', 'backend name or id')
    .addOption(outputOption())
    .addHelpText('after', `
Fails with BACKEND_IN_USE while volumes remain on it; delete or move them first.

Example:
  $ stowage backend delete fast
`)
    .action(async (name: string, o: OutputFlags, cmd: Command) => {
      await ctx.client(cmd).deleteBackend(name);
      emit(ctx.stdout, o.output, { deleted: name }, () => `backend ${name} deleted\n`);
    });

  registerTop(backend, ctx);
}
