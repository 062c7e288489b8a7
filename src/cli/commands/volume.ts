import { Option, type Command } from 'commander';
import { compact, nonEmpty } from '../../core/compact.js';
import type { Operation } from '../../core/schemas/operation-schema.js';
import { isClone, sizeIsMissing } from '../../core/volume-requests.js';
import type { CreateVolumeRequest, Volume, VolumeListFilter } from '../../core/schemas/volume-schema.js';
import { PLACEMENT_POLICIES } from '../../placement/placement.js';
import { VOLUME_FORMATS, VOLUME_STATES } from '../../core/states.js';
import type { DryRunResponseT, StowageClient, VolumeWithOperationT } from '../client.js';
import type { CliContext } from '../context.js';
import { usageError } from '../errors.js';
import { emit, formatScore, formatTime, outputOption, renderFields, renderTable, size, sizeExact, type OutputFormat } from '../output.js';
import { collect, durationArg, sizeArg } from '../parse.js';
import { describePlacement } from '../placement-words.js';
import { DEFAULT_WAIT_TIMEOUT_MS, assertSucceeded, waitForOperation } from '../wait.js';
import { attachmentShortTable, grantTable, registerVolumeAccess, stepNote, withoutSecret } from './attachment.js';
import { registerVolumeRevert } from './snapshot.js';
import { allTenantsOption, tablesByTenant } from '../tenant-flags.js';

interface WaitFlags {
  wait: boolean;
  timeout: number;
  output: OutputFormat;
}

/**
 * The create flags: the request's fields under their flag names (commander's camelCase), so their
 * types come from the schema; only the flags whose name or type differs are spelled out.
 */
type CreateFlags = WaitFlags & Pick<CreateVolumeRequest, 'fromSnapshot' | 'fromVolume' | 'multiattach' | 'backend' | 'format' | 'zone' | 'policy' | 'class'> & {
  size?: number;
  offload: boolean;
  tag?: string[];
  dryRun?: boolean;
};

type ListFlags = VolumeListFilter & { output: OutputFormat };

function addWaitFlags(cmd: Command): Command {
  return cmd
    .option('--no-wait', 'return once the operation is submitted instead of waiting for it')
    .option('--timeout <duration>', 'longest wait for the operation, e.g. 30s or 10m', durationArg, DEFAULT_WAIT_TIMEOUT_MS)
    .addOption(outputOption());
}

/** The volume list table: name, id, state, human size, backend, created. */
export function volumeTable(items: readonly Volume[]): string {
  return renderTable(['name', 'id', 'state', 'size', 'backend', 'created'],
    items.map((v) => [v.name, v.id, v.state, size(v.sizeBytes), v.backendName ?? '-', formatTime(v.createdAt)]));
}

/** Every field of one volume, with its placement decision in words. */
export function volumeFields(v: Volume): string {
  return renderFields([
    ['Name', v.name],
    ['ID', v.id],
    ['State', v.stateReason ? `${v.state} (${v.stateReason})` : v.state],
    ['Size', sizeExact(v.sizeBytes)],
    ['Format', v.format],
    ['Multi-attach', v.multiattach ? 'yes: several hosts may attach it read-write' : 'no'],
    ['Backend', v.backendName ? `${v.backendName} (${v.backendId ?? '?'})` : '-'],
    ['Created', formatTime(v.createdAt)],
    ['Updated', formatTime(v.updatedAt)],
    ['Placement', v.placement ? describePlacement(v.placement).join('\n') : 'not placed yet'],
  ]);
}

/** The dry-run verdict table, the winner and the reason. */
export function dryRunText(d: DryRunResponseT): string {
  const rows = d.verdicts.map((v) => [
    `${v.backend === d.winner ? '*' : ' '} ${v.backend}`, v.passed ? 'passed' : 'rejected', v.filter ?? '-', v.reason ?? '-',
    size(v.usableBytes), String(v.cost), formatScore(v.score),
  ]);
  const table = rows.length ? renderTable(['  backend', 'verdict', 'filter', 'reason', 'usable', 'cost', 'score'], rows) : 'no backends are registered\n';
  return `${table}\nWinner: ${d.winner ?? 'none: the volume cannot be placed'}\nReason: ${d.reason}\n`;
}

/** Prints where a submitted operation can be followed (for --no-wait). */
function submittedNote(ctx: CliContext, op: Operation): void {
  ctx.stderr.write(`operation ${op.id} (${op.kind}) is ${op.state}; follow it with \`stowage operation wait ${op.id}\`\n`);
}

/** Waits for a volume operation (unless --no-wait) and prints the outcome; returns the finished operation or null. */
async function finish(ctx: CliContext, client: StowageClient, res: VolumeWithOperationT, o: WaitFlags): Promise<Operation | null> {
  if (!o.wait) {
    emit(ctx.stdout, o.output, res, () => volumeFields(res.volume));
    submittedNote(ctx, res.operation);
    return null;
  }
  return assertSucceeded(await waitForOperation(ctx, client, res.operation, { timeoutMs: o.timeout, label: `${res.operation.kind} ${res.volume.name}` }));
}

/** `stowage volume …`: create (or dry-run), list, show, resize, delete. */
export function register(program: Command, ctx: CliContext): void {
  const volume = program.command('volume').description('Create (or clone), inspect, resize, revert and delete volumes; grant hosts access; attach them to instances');

  addWaitFlags(volume.command('create')
    .description('Create a volume: placed now, then provisioned by an operation this command waits for')
    .argument('<name>', 'volume name')
    .option('--size <size>', 'size, e.g. 10G, 512MiB, 1T (G/GiB binary, GB decimal); a clone defaults to its source\'s size', sizeArg)
    .option('--from-snapshot <snapshot>', 'clone this snapshot (name or id)')
    .option('--from-volume <volume>', 'clone this volume (name or id)')
    .option('--no-offload', 'copy a clone on the host (qemu-img convert) even where the backend could offload it')
    .option('--multiattach', 'several hosts may attach it read-write at once (placed on backends with the multiattach capability)')
    .option('--backend <backend>', 'pin to this backend (name or id) instead of letting placement choose')
    .addOption(new Option('--format <format>', 'image format').choices(VOLUME_FORMATS))
    .option('--tag <tag>', 'require backends with this tag (repeatable)', collect)
    .option('--zone <zone>', 'require backends in this zone')
    .option('--class <class>', 'storage class (name or id); default: the default class, if any')
    .addOption(new Option('--policy <policy>', 'how to pick among backends that pass every filter').choices(PLACEMENT_POLICIES))
    .option('--dry-run', 'show every backend\'s verdict and the winner, changing nothing'))
    .addHelpText('after', `
Prints the volume once it is available (with -o json: the volume object; with --no-wait: the API's
{volume, operation} answer). Progress goes to stderr.

Examples:
  $ stowage volume create db1 --size 10G
  $ stowage volume create db2 --size 512MiB --backend fast --format qcow2
  $ stowage volume create db3 --size 1T --tag ssd --zone a --policy spread
  $ stowage volume create db4 --size 10G --dry-run      # every backend's verdict, nothing created
  $ stowage volume create db5 --size 10G --no-wait -o json | jq -r .operation.id
  $ stowage volume create db6 --from-snapshot before-upgrade     # clone; prints the path it took
  $ stowage volume create db7 --from-volume db1 --no-offload    # force a host copy

A clone is offloaded on its source's backend where it can be (btrfs snapshot, reflink), else copied
by the backend or on the host; the output says which path it took ("Clone path:").
`)
    .action(async (name: string, o: CreateFlags, cmd: Command) => {
      if (o.fromSnapshot && o.fromVolume) throw usageError('VALIDATION_FAILED', 'pass --from-snapshot or --from-volume, not both');
      const body: CreateVolumeRequest = compact({
        name, sizeBytes: o.size,
        fromSnapshot: nonEmpty(o.fromSnapshot), fromVolume: nonEmpty(o.fromVolume), offload: o.offload ? undefined : false, multiattach: o.multiattach ? true : undefined,
        format: o.format, backend: nonEmpty(o.backend),
        requiredTags: o.tag && [...new Set(o.tag)], zone: nonEmpty(o.zone), policy: o.policy,
        class: nonEmpty(o.class),
      });
      const clone = isClone(body);
      if (sizeIsMissing(body)) throw usageError('VALIDATION_FAILED', '--size is required (unless the volume is a clone: --from-snapshot or --from-volume)');
      if (!o.offload && !clone) throw usageError('VALIDATION_FAILED', '--no-offload applies to clones only (--from-snapshot or --from-volume)');
      const client = ctx.client(cmd);
      if (o.dryRun) {
        const d = await client.dryRun(body);
        emit(ctx.stdout, o.output, d, () => dryRunText(d));
        return;
      }
      const res = await client.createVolume(body);
      const op = await finish(ctx, client, res, o);
      if (op) {
        const v = await client.getVolume(res.volume.id);
        const path = clone ? stepNote(op, 'provision') : undefined;
        emit(ctx.stdout, o.output, v, () => `${volumeFields(v)}${path ? `Clone path: ${path}\n` : ''}`);
      }
    });

  volume.command('list')
    .alias('ls')
    .description('List volumes')
    .option('--backend <backend>', 'only volumes on this backend (name or id)')
    .addOption(new Option('--state <state>', 'only volumes in this state').choices(VOLUME_STATES))
    .addOption(allTenantsOption())
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage volume list
  $ stowage volume list --backend fast --state available
  $ stowage volume list --all-tenants
  $ stowage volume list -o json | jq -r '.[].name'
`)
    .action(async (o: ListFlags, cmd: Command) => {
      const client = ctx.client(cmd);
      const items = await client.listVolumes({ backend: o.backend, state: o.state, allTenants: o.allTenants });
      const text = await tablesByTenant(client, o.output, o.allTenants, items, volumeTable, 'no volumes\n');
      emit(ctx.stdout, o.output, items, () => text);
    });

  volume.command('show')
    .description('Show one volume with its placement decision in words, the hosts with access and its attachments')
    .argument('<name>', 'volume name or id')
    .addOption(outputOption())
    .addHelpText('after', `
Grants are shown without secrets (\`stowage volume grant\` prints the connection info). With -o json:
the volume with two more fields, grants and attachments.

Examples:
  $ stowage volume show db1
  $ stowage volume show db1 -o json | jq .placement
`)
    .action(async (name: string, o: { output: OutputFormat }, cmd: Command) => {
      const client = ctx.client(cmd);
      const v = await client.getVolume(name);
      const [grants, attachments] = await Promise.all([client.listGrants(v.id).then((gs) => gs.map(withoutSecret)), client.listAttachments({ volume: v.id })]);
      emit(ctx.stdout, o.output, { ...v, grants, attachments }, () => [
        volumeFields(v),
        grants.length ? `\nGrants:\n${grantTable(grants)}` : '\nGrants: none\n',
        attachments.length ? `\nAttachments:\n${attachmentShortTable(attachments)}` : '\nAttachments: none\n',
      ].join(''));
    });

  addWaitFlags(volume.command('resize')
    .description('Grow a volume (shrinking is refused)')
    .argument('<name>', 'volume name or id')
    .requiredOption('--size <size>', 'the new size, e.g. 20G', sizeArg))
    .addHelpText('after', `
Examples:
  $ stowage volume resize db1 --size 20G
  $ stowage volume resize db1 --size 1TiB --no-wait
`)
    .action(async (name: string, o: WaitFlags & { size: number }, cmd: Command) => {
      const client = ctx.client(cmd);
      const res = await client.resizeVolume(name, o.size);
      if (await finish(ctx, client, res, o)) {
        const v = await client.getVolume(res.volume.id);
        emit(ctx.stdout, o.output, v, () => volumeFields(v));
      }
    });

  addWaitFlags(volume.command('delete')
    .alias('rm')
    .description('Delete a volume and its data')
    .argument('<name>', 'volume name or id')
    .option('-y, --yes', 'do not ask for confirmation (required when stdin is not a terminal)'))
    .addHelpText('after', `
Prints the finished delete operation with -o json (with --no-wait: the API's {volume, operation}).

Examples:
  $ stowage volume delete db1
  $ stowage volume delete db1 --yes --no-wait
`)
    .action(async (name: string, o: WaitFlags & { yes?: boolean }, cmd: Command) => {
      if (!o.yes && !(await ctx.confirm(`Delete volume ${name} and all its data?`))) {
        throw usageError('VALIDATION_FAILED', `not deleting volume ${name} without confirmation`, ['pass --yes to delete without asking']);
      }
      const client = ctx.client(cmd);
      const res = await client.deleteVolume(name);
      const op = await finish(ctx, client, res, o);
      if (op) emit(ctx.stdout, o.output, op, () => `volume ${res.volume.name} deleted\n`);
    });

  registerVolumeRevert(volume, ctx, volumeFields);
  registerVolumeAccess(volume, ctx);
}
