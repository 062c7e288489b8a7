import type { Command } from 'commander';
import type { Snapshot } from '../../core/schemas/snapshot-schema.js';
import type { Volume } from '../../core/schemas/volume-schema.js';
import type { CliContext } from '../context.js';
import { usageError } from '../errors.js';
import { emit, formatTime, outputOption, renderFields, renderTable, size, sizeExact, type OutputFormat } from '../output.js';
import { assertSucceeded, waitForOperation } from '../wait.js';
import { addWaitFlags, submittedNote, type WaitFlags } from './attachment.js';
import { allTenantsOption, tablesByTenant } from '../tenant-flags.js';

/** The snapshot list table. */
export function snapshotTable(items: readonly Snapshot[]): string {
  return renderTable(['name', 'id', 'volume', 'state', 'size', 'method', 'created'],
    items.map((s) => [s.name, s.id, s.volumeName ?? s.volumeId, s.state, size(s.sizeBytes), s.method ?? '-', formatTime(s.createdAt)]));
}

/** Every field of one snapshot. */
export function snapshotFields(s: Snapshot): string {
  return renderFields([
    ['Name', s.name],
    ['ID', s.id],
    ['Volume', `${s.volumeName ?? '?'} (${s.volumeId})`],
    ['State', s.stateReason ? `${s.state} (${s.stateReason})` : s.state],
    ['Size', sizeExact(s.sizeBytes)],
    ['Method', s.method ?? '-'],
    ['Backend', s.backendId],
    ['Created', formatTime(s.createdAt)],
    ['Updated', formatTime(s.updatedAt)],
  ]);
}

/** Registers `volume revert VOL --to SNAP`; `render` prints the reverted volume for people. */
export function registerVolumeRevert(volume: Command, ctx: CliContext, render: (v: Volume) => string): void {
  addWaitFlags(volume.command('revert')
    .description('Revert a volume to one of its snapshots (everything written since is lost)')
    .argument('<volume>', 'volume name or id')
    .requiredOption('--to <snapshot>', 'snapshot name or id')
    .option('-y, --yes', 'do not ask for confirmation (required when stdin is not a terminal)'))
    .addHelpText('after', `
Refused with VOLUME_IN_USE while any host has access: detach or revoke first.
With -o json: the volume (with --no-wait: {volume, operation}).

Examples:
  $ stowage volume revert db1 --to before-upgrade --yes
  $ stowage volume revert db1 --to snap-abcdefghijklmnopqrst --yes --no-wait
`)
    .action(async (name: string, o: WaitFlags & { to: string; yes?: boolean }, cmd: Command) => {
      if (!o.yes && !(await ctx.confirm(`Revert volume ${name} to snapshot ${o.to}? What was written since is lost.`))) {
        throw usageError('VALIDATION_FAILED', `not reverting volume ${name} without confirmation`, ['pass --yes to revert without asking']);
      }
      const client = ctx.client(cmd);
      const res = await client.revertVolume(name, o.to);
      if (!o.wait) {
        emit(ctx.stdout, o.output, res, () => render(res.volume));
        submittedNote(ctx, res.operation);
        return;
      }
      assertSucceeded(await waitForOperation(ctx, client, res.operation, { timeoutMs: o.timeout, label: `revert ${res.volume.name} to ${o.to}` }));
      const v = await client.getVolume(res.volume.id);
      emit(ctx.stdout, o.output, v, () => `${render(v)}\nvolume ${v.name} reverted to snapshot ${o.to}\n`);
    });
}

/** `stowage snapshot …`: create, list, show, delete. */
export function register(program: Command, ctx: CliContext): void {
  const snapshot = program.command('snapshot').alias('snap').description('Snapshot volumes (offloaded on the backend where it can), list and delete snapshots');

  addWaitFlags(snapshot.command('create')
    .description('Snapshot a volume on its backend')
    .argument('<volume>', 'volume name or id')
    .requiredOption('--name <name>', 'snapshot name'))
    .addHelpText('after', `
Prints the snapshot with the method its backend used (btrfs-snapshot, reflink, qcow2-backing, copy).
With -o json: the snapshot (with --no-wait: {snapshot, operation}).

Examples:
  $ stowage snapshot create db1 --name before-upgrade
  $ stowage volume create db1-copy --from-snapshot before-upgrade
`)
    .action(async (vol: string, o: WaitFlags & { name: string }, cmd: Command) => {
      const client = ctx.client(cmd);
      const res = await client.createSnapshot(vol, o.name);
      if (!o.wait) {
        emit(ctx.stdout, o.output, res, () => snapshotFields(res.snapshot));
        submittedNote(ctx, res.operation);
        return;
      }
      assertSucceeded(await waitForOperation(ctx, client, res.operation, { timeoutMs: o.timeout, label: `snapshot ${o.name} of ${vol}` }));
      const s = await client.getSnapshot(res.snapshot.id);
      emit(ctx.stdout, o.output, s, () => snapshotFields(s));
    });

  snapshot.command('list')
    .alias('ls')
    .description('List snapshots')
    .option('--volume <volume>', 'only snapshots of this volume (name or id; by id with --all-tenants)')
    .addOption(allTenantsOption())
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage snapshot list
  $ stowage snapshot list --all-tenants
  $ stowage snapshot list --volume db1 -o json | jq -r '.[].name'
`)
    .action(async (o: { volume?: string; allTenants?: boolean; output: OutputFormat }, cmd: Command) => {
      const client = ctx.client(cmd);
      const items = await client.listSnapshots({ volume: o.volume, allTenants: o.allTenants });
      const text = await tablesByTenant(client, o.output, o.allTenants, items, snapshotTable, 'no snapshots\n');
      emit(ctx.stdout, o.output, items, () => text);
    });

  snapshot.command('show')
    .description('Show one snapshot')
    .argument('<snapshot>', 'snapshot name or id')
    .addOption(outputOption())
    .addHelpText('after', `
Example:
  $ stowage snapshot show before-upgrade
`)
    .action(async (ref: string, o: { output: OutputFormat }, cmd: Command) => {
      const s = await ctx.client(cmd).getSnapshot(ref);
      emit(ctx.stdout, o.output, s, () => snapshotFields(s));
    });

  addWaitFlags(snapshot.command('delete')
    .alias('rm')
    .description('Delete a snapshot and its data')
    .argument('<snapshot>', 'snapshot name or id')
    .option('-y, --yes', 'do not ask for confirmation (required when stdin is not a terminal)'))
    .addHelpText('after', `
With -o json: the finished delete operation (with --no-wait: {snapshot, operation}).

Examples:
  $ stowage snapshot delete before-upgrade --yes
  $ stowage snapshot delete snap-abcdefghijklmnopqrst --yes --no-wait
`)
    .action(async (ref: string, o: WaitFlags & { yes?: boolean }, cmd: Command) => {
      if (!o.yes && !(await ctx.confirm(`Delete snapshot ${ref} and its data?`))) {
        throw usageError('VALIDATION_FAILED', `not deleting snapshot ${ref} without confirmation`, ['pass --yes to delete without asking']);
      }
      const client = ctx.client(cmd);
      const res = await client.deleteSnapshot(ref);
      if (!o.wait) {
        emit(ctx.stdout, o.output, res, () => snapshotFields(res.snapshot));
        submittedNote(ctx, res.operation);
        return;
      }
      const op = assertSucceeded(await waitForOperation(ctx, client, res.operation, { timeoutMs: o.timeout, label: `delete snapshot ${res.snapshot.name}` }));
      emit(ctx.stdout, o.output, op, () => `snapshot ${res.snapshot.name} deleted\n`);
    });
}
