import { Option, type Command } from 'commander';
import type { Attachment } from '../../core/schemas/attachment-schema.js';
import type { ConnectionInfoModel, Grant } from '../../core/schemas/access-schema.js';
import type { Operation } from '../../core/schemas/operation-schema.js';
import { ACCESS_MODES, type AccessMode } from '../../core/states.js';
import type { StowageClient } from '../client.js';
import type { CliContext } from '../context.js';
import { emit, formatTime, outputOption, renderFields, renderTable, type OutputFormat } from '../output.js';
import { durationArg } from '../parse.js';
import { DEFAULT_WAIT_TIMEOUT_MS, assertSucceeded, waitForOperation } from '../wait.js';
import { allTenantsOption, tablesByTenant } from '../tenant-flags.js';

/** The flags of every command that submits an operation. */
export interface WaitFlags {
  wait: boolean;
  timeout: number;
  output: OutputFormat;
}

/** Adds `--no-wait`, `--timeout` and `-o` to a command that submits an operation. */
export function addWaitFlags(cmd: Command): Command {
  return cmd
    .option('--no-wait', 'return once the operation is submitted instead of waiting for it')
    .option('--timeout <duration>', 'longest wait for the operation, e.g. 30s or 10m', durationArg, DEFAULT_WAIT_TIMEOUT_MS)
    .addOption(outputOption());
}

/** The `--mode rw|ro` option (default rw). */
export function modeOption(what: string): Option {
  return new Option('--mode <mode>', `${what}: rw (read-write, one host) or ro (read-only, any number of hosts)`).choices(ACCESS_MODES).default('rw');
}

/** Prints (on stderr) where a submitted operation can be followed, for --no-wait. */
export function submittedNote(ctx: CliContext, op: Operation): void {
  ctx.stderr.write(`operation ${op.id} (${op.kind}) is ${op.state}; follow it with \`stowage operation wait ${op.id}\`\n`);
}

/**
 * Waits for each operation in turn (each with its progress line) and returns them finished,
 * failed ones included; `throwFirstFailure` turns the first failed one into its `code: message`.
 */
export async function waitAll(ctx: CliContext, client: StowageClient, ops: readonly { op: Operation; label: string }[], timeoutMs: number): Promise<Operation[]> {
  const done: Operation[] = [];
  for (const { op, label } of ops) done.push(await waitForOperation(ctx, client, op, { timeoutMs, label }));
  return done;
}

/** Throws the first failed operation's error (exit 1); returns when every one succeeded. */
export function throwFirstFailure(ops: readonly Operation[]): void {
  for (const op of ops) assertSucceeded(op);
}

/** The note a finished operation recorded on one of its steps, if any. */
export function stepNote(op: Operation, step: string): string | undefined {
  return op.stepsDone.find((s) => s.name === step)?.note;
}

/** A grant as it may be shown anywhere but `volume grant`: the connection info never carries the CHAP secret. */
export function withoutSecret(g: Grant): Grant {
  if (!g.connection || g.connection.chapSecret === undefined) return g;
  const connection = Object.fromEntries(Object.entries(g.connection).filter(([k]) => k !== 'chapSecret')) as ConnectionInfoModel;
  return { ...g, connection };
}

/** The grants table of `volume show`: host, mode, state (never a secret). */
export function grantTable(items: readonly Grant[]): string {
  return renderTable(['host', 'mode', 'state', 'since'],
    items.map((g) => [g.hostName, g.mode, g.stateReason ? `${g.state} (${g.stateReason})` : g.state, formatTime(g.createdAt)]));
}

/** The attachment list table. */
export function attachmentTable(items: readonly Attachment[]): string {
  return renderTable(['id', 'volume', 'host', 'instance', 'mode', 'state', 'device', 'updated'],
    items.map((a) => [a.id, a.volumeName, a.hostName, a.instance, a.mode, a.state, a.deviceId ?? '-', formatTime(a.updatedAt)]));
}

/** The attachments table of `volume show` and migrations: host, instance, state, device. */
export function attachmentShortTable(items: readonly Attachment[]): string {
  return renderTable(['host', 'instance', 'mode', 'state', 'device'],
    items.map((a) => [a.hostName, a.instance, a.mode, a.stateReason ? `${a.state} (${a.stateReason})` : a.state, a.deviceId ?? '-']));
}

/** Every field of one attachment. */
export function attachmentFields(a: Attachment): string {
  return renderFields([
    ['ID', a.id],
    ['Volume', `${a.volumeName} (${a.volumeId})`],
    ['Host', `${a.hostName} (${a.hostId})`],
    ['Instance', a.instance],
    ['Mode', a.mode],
    ['State', a.stateReason ? `${a.state} (${a.stateReason})` : a.state],
    ['Device', a.deviceId ?? '-'],
    ['Migration', a.migrationId ?? '-'],
    ['Reported', formatTime(a.reportedAt)],
    ['Created', formatTime(a.createdAt)],
    ['Updated', formatTime(a.updatedAt)],
  ]);
}

/** What `volume grant` knows besides the connection info, to write ready-to-paste command lines. */
export interface GrantContext {
  readonly volume: string;
  readonly host: string;
  /** The host's iSCSI initiator name, when registered. */
  readonly initiatorName: string | null;
  /** The volume's image format (raw, qcow2), for file volumes. */
  readonly format: string;
}

/** Quotes one word for a POSIX shell when it needs it (paths with spaces and the like). */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:%@=,+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A value inside a QEMU option string: commas are doubled. */
function qemuOpt(value: string): string {
  return value.replace(/,/g, ',,');
}

/**
 * The connection info for an operator who logs in from the granted host: every field, CHAP
 * secret included, and example command lines to paste on that host.
 */
export function connectionText(c: ConnectionInfoModel, g: GrantContext): string {
  const mode = c.mode === 'ro' ? 'read-only' : 'read-write';
  const head = `${mode} access of host ${g.host} to volume ${g.volume}`;
  if (c.protocol === 'iscsi') {
    const fields = renderFields([
      ['Protocol', 'iscsi'],
      ['Portal', c.portal ?? '-'],
      ['IQN', c.iqn ?? '-'],
      ['LUN', c.lun === undefined ? '-' : String(c.lun)],
      ['CHAP user', c.chapUser ?? '-'],
      ['CHAP secret', c.chapSecret ?? '-'],
      ['Initiator', g.initiatorName ?? `- (host ${g.host} has no initiator name; access is bound to its addresses)`],
      ['Mode', c.mode],
    ]);
    const auth = c.chapUser && c.chapSecret ? `${encodeURIComponent(c.chapUser)}%${encodeURIComponent(c.chapSecret)}@` : '';
    const init = g.initiatorName ? ['-i', g.initiatorName] : [];
    const portal = c.portal ?? '<portal>';
    const lsLine = ['iscsi-ls', '-s', ...init, `iscsi://${auth}${portal}`].map(shellWord).join(' ');
    const opts = [
      'driver=iscsi', 'transport=tcp', `portal=${qemuOpt(portal)}`, `target=${qemuOpt(c.iqn ?? '<iqn>')}`, `lun=${String(c.lun ?? 0)}`,
      ...(c.chapUser && c.chapSecret ? [`user=${qemuOpt(c.chapUser)}`, 'password-secret=sec0'] : []),
      ...(g.initiatorName ? [`initiator-name=${qemuOpt(g.initiatorName)}`] : []),
    ].join(',');
    const object = c.chapSecret ? ['--object', `secret,id=sec0,data=${qemuOpt(c.chapSecret)}`] : [];
    const qemuLine = ['qemu-img', 'info', ...object, '--image-opts', opts].map(shellWord).join(' ');
    return `${head} (this output holds the CHAP secret: keep it private)\n\n${fields}
Log in from ${g.host} (libiscsi-bin, qemu-utils with qemu-block-extra):
  ${lsLine}
  ${qemuLine}
`;
  }
  const fields = renderFields([
    ['Protocol', c.protocol],
    ...(c.portal ? [['Portal', c.portal] as const] : []),
    ['Path', c.path ?? '-'],
    ['Mode', c.mode],
  ]);
  const example = c.path ? `\nOpen it on ${g.host}:\n  ${['qemu-img', 'info', '-f', g.format, ...(c.mode === 'ro' ? ['-U'] : []), c.path].map(shellWord).join(' ')}\n` : '';
  return `${head}\n\n${fields}${example}`;
}

/** Registers `volume grant|revoke|attach|detach` on the `volume` command. */
export function registerVolumeAccess(volume: Command, ctx: CliContext): void {
  addWaitFlags(volume.command('grant')
    .description('Give a host access to a volume on its backend and print how to log in from there (CHAP secret included)')
    .argument('<volume>', 'volume name or id')
    .requiredOption('--host <host>', 'host name or id')
    .addOption(modeOption('access mode')))
    .addHelpText('after', `
Prints the connection info an operator needs on that host: portal, IQN, LUN, CHAP user and CHAP
secret for iSCSI (the path for local file volumes), and command lines to paste there.
This is the ONE command that prints a secret on purpose: keep its output private. Every other
command (volume show, attachment list, host list, their -o json) shows grants without secrets.
Reading the connection info is recorded in the events. With -o json: the connection info object.
Granting again what is already granted prints the same access again.

A read-write grant excludes every other host (VOLUME_IN_USE); any number of hosts may read.

Examples:
  $ stowage volume grant db1 --host hv1
  $ stowage volume grant db1 --host hv2 --mode ro
  $ stowage volume grant db1 --host hv1 -o json | jq -r .chapSecret
`)
    .action(async (vol: string, o: WaitFlags & { host: string; mode: AccessMode }, cmd: Command) => {
      const client = ctx.client(cmd);
      const res = await client.grantAccess(vol, { host: o.host, mode: o.mode });
      if (!o.wait) {
        emit(ctx.stdout, o.output, res, () => `grant of ${res.grant.hostName} on ${res.grant.volumeName} is ${res.grant.state}; run this command again once it is active to print the connection info\n`);
        submittedNote(ctx, res.operation);
        return;
      }
      assertSucceeded(await waitForOperation(ctx, client, res.operation, { timeoutMs: o.timeout, label: `grant ${res.grant.volumeName} to ${res.grant.hostName}` }));
      const connection = await client.getConnection(res.grant.volumeId, res.grant.hostId);
      const [host, v] = await Promise.all([client.getHost(res.grant.hostId), client.getVolume(res.grant.volumeId)]);
      emit(ctx.stdout, o.output, connection, () => connectionText(connection, { volume: v.name, host: host.name, initiatorName: host.initiatorName, format: v.format }));
    });

  addWaitFlags(volume.command('revoke')
    .description('Take a host\'s access to a volume away and drop its live sessions')
    .argument('<volume>', 'volume name or id')
    .requiredOption('--host <host>', 'host name or id'))
    .addHelpText('after', `
With -o json: {grant, operation} (no secrets).

Examples:
  $ stowage volume revoke db1 --host hv2
  $ stowage volume revoke db1 --host hv2 --no-wait
`)
    .action(async (vol: string, o: WaitFlags & { host: string }, cmd: Command) => {
      const client = ctx.client(cmd);
      const res = await client.revokeAccess(vol, o.host);
      const grant = withoutSecret(res.grant);
      if (!o.wait) {
        emit(ctx.stdout, o.output, { grant, operation: res.operation }, () => `revoking access of ${grant.hostName} to ${grant.volumeName}\n`);
        submittedNote(ctx, res.operation);
        return;
      }
      const op = assertSucceeded(await waitForOperation(ctx, client, res.operation, { timeoutMs: o.timeout, label: `revoke ${grant.volumeName} from ${grant.hostName}` }));
      emit(ctx.stdout, o.output, { grant: { ...grant, state: 'revoked' }, operation: op }, () => `access of host ${grant.hostName} to volume ${grant.volumeName} revoked\n`);
    });

  addWaitFlags(volume.command('attach')
    .description('Attach a volume to an instance (VM) on a host: grant → the host\'s agent connects and hot-plugs → attached')
    .argument('<volume>', 'volume name or id')
    .requiredOption('--host <host>', 'host name or id')
    .requiredOption('--instance <vm>', 'instance (VM) name on that host')
    .addOption(modeOption('attach mode')))
    .addHelpText('after', `
Waits while the attachment goes granting → connecting → attached (the host's \`stowage agent\`
does the connecting) and prints it with its device id. A read-write volume is attached to one
host at a time; while its current host is down, attaching elsewhere is refused until that host
is fenced (HOST_NOT_FENCED names it). With -o json: the attachment.

Examples:
  $ stowage volume attach db1 --host hv1 --instance vm1
  $ stowage volume attach db1 --host hv2 --instance vm7 --mode ro
  $ stowage volume attach db1 --host hv1 --instance vm1 -o json | jq -r .deviceId
`)
    .action(async (vol: string, o: WaitFlags & { host: string; instance: string; mode: AccessMode }, cmd: Command) => {
      const client = ctx.client(cmd);
      const res = await client.attachVolume(vol, { host: o.host, instance: o.instance, mode: o.mode });
      if (!o.wait) {
        emit(ctx.stdout, o.output, res, () => attachmentFields(res.attachment));
        submittedNote(ctx, res.operation);
        return;
      }
      const label = `attach ${res.attachment.volumeName} to ${res.attachment.hostName}/${res.attachment.instance}`;
      assertSucceeded(await waitForOperation(ctx, client, res.operation, { timeoutMs: o.timeout, label }));
      const a = await client.getAttachment(res.attachment.id);
      emit(ctx.stdout, o.output, a, () => `${attachmentFields(a)}\n${a.state === 'attached' ? `attached to ${a.instance} on ${a.hostName} as device ${a.deviceId ?? '?'}` : `attachment is ${a.state}`}\n`);
    });

  addWaitFlags(volume.command('detach')
    .description('Detach a volume everywhere (or from one host): unplug, disconnect, revoke')
    .argument('<volume>', 'volume name or id')
    .option('--host <host>', 'only from this host (name or id)'))
    .addHelpText('after', `
The revoke happens even when the host is down (its agent cannot confirm the unplug): the host
loses access either way. With -o json: the attachments afterwards.

Examples:
  $ stowage volume detach db1
  $ stowage volume detach db1 --host hv2 --no-wait
`)
    .action(async (vol: string, o: WaitFlags & { host?: string }, cmd: Command) => {
      const client = ctx.client(cmd);
      const items = await client.detachVolume(vol, o.host);
      if (!o.wait) {
        emit(ctx.stdout, o.output, items, () => attachmentTable(items.map((i) => i.attachment)));
        for (const i of items) submittedNote(ctx, i.operation);
        return;
      }
      const ops = await waitAll(ctx, client, items.map((i) => ({ op: i.operation, label: `detach ${i.attachment.volumeName} from ${i.attachment.hostName}/${i.attachment.instance}` })), o.timeout);
      const after = await Promise.all(items.map((i) => client.getAttachment(i.attachment.id)));
      emit(ctx.stdout, o.output, after, () => (after.length ? attachmentTable(after) : 'nothing was attached\n'));
      throwFirstFailure(ops);
    });
}

/** `stowage attachment …`: list, show. */
export function register(program: Command, ctx: CliContext): void {
  const attachment = program.command('attachment').description('Inspect attachments of volumes to instances on hosts (attach with `stowage volume attach`)');

  attachment.command('list')
    .alias('ls')
    .description('List attachments (live ones unless --all)')
    .option('--volume <volume>', 'only of this volume (name or id)')
    .option('--host <host>', 'only on this host (name or id)')
    .option('--all', 'include gone attachments')
    .addOption(allTenantsOption())
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage attachment list
  $ stowage attachment list --host hv1 --all
  $ stowage attachment list --volume db1 -o json | jq -r '.[].deviceId'
`)
    .action(async (o: { volume?: string; host?: string; all?: boolean; allTenants?: boolean; output: OutputFormat }, cmd: Command) => {
      const client = ctx.client(cmd);
      const items = await client.listAttachments({ volume: o.volume, host: o.host, all: o.all === true ? true : undefined, allTenants: o.allTenants });
      const text = await tablesByTenant(client, o.output, o.allTenants, items, attachmentTable, 'no attachments\n');
      emit(ctx.stdout, o.output, items, () => text);
    });

  attachment.command('show')
    .description('Show one attachment')
    .argument('<id>', 'attachment id')
    .addOption(outputOption())
    .addHelpText('after', `
Example:
  $ stowage attachment show att-abcdefghijklmnopqrst
`)
    .action(async (id: string, o: { output: OutputFormat }, cmd: Command) => {
      const a = await ctx.client(cmd).getAttachment(id);
      emit(ctx.stdout, o.output, a, () => attachmentFields(a));
    });
}
