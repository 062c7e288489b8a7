import type { Command } from 'commander';
import type { Attachment } from '../../core/schemas/attachment-schema.js';
import type { Grant } from '../../core/schemas/access-schema.js';
import type { Host } from '../../core/schemas/host-schema.js';
import type { UpdateHostInput } from '../../core/schemas/host-schema.js';
import { compact, nonEmpty } from '../../core/compact.js';
import type { EnrollmentAnswer, StowageClient } from '../client.js';
import type { CliContext } from '../context.js';
import { ApiError, usageError } from '../errors.js';
import { ago, emit, formatTime, list, outputOption, renderFields, renderTable, type OutputFormat } from '../output.js';
import { collect } from '../parse.js';
import { assertSucceeded, waitForOperation } from '../wait.js';
import { addWaitFlags, attachmentTable, stepNote, submittedNote, throwFirstFailure, waitAll, withoutSecret, type WaitFlags } from './attachment.js';
import { addRestrictionFlags, restrictionBody, restrictionWords, type RestrictionFlags } from '../tenant-flags.js';

interface OutputFlags {
  output: OutputFormat;
}

interface CreateFlags extends OutputFlags, RestrictionFlags {
  initiatorName?: string;
  address?: string[];
  zone?: string;
}

interface UpdateFlags extends CreateFlags {
  clearInitiatorName?: boolean;
}

/** How many volumes' grants `host fence` reads at once while listing what the host can reach. */
const GRANT_SCAN_CONCURRENCY = 8;

/** The host list table: name, state, addresses, initiator, zone, heartbeat age, instances. */
export function hostTable(items: readonly Host[], nowMs: number): string {
  return renderTable(['name', 'state', 'addresses', 'initiator', 'zone', 'heartbeat', 'instances'],
    items.map((h) => [h.name, h.state, list(h.addresses), h.initiatorName ?? '-', h.zone || '-', ago(h.agentHeartbeatAt, nowMs), list(h.instances)]));
}

/** Every field of one host. */
export function hostFields(h: Host, nowMs: number): string {
  return renderFields([
    ['Name', h.name],
    ['ID', h.id],
    ['State', h.state],
    ['Initiator', h.initiatorName ?? '-'],
    ['Addresses', list(h.addresses)],
    ['Zone', h.zone || '-'],
    ['Connectors', list(h.connectors)],
    ['Instances', list(h.instances)],
    ['Tenants', restrictionWords(h.tenants)],
    ['Heartbeat', h.agentHeartbeatAt ? `${formatTime(h.agentHeartbeatAt)} (${ago(h.agentHeartbeatAt, nowMs)})` : 'never (no agent has reported)'],
    ['Created', formatTime(h.createdAt)],
    ['Updated', formatTime(h.updatedAt)],
  ]);
}

/** Live grants held by `host`, found volume by volume (the API lists grants per volume). */
async function grantsOfHost(client: StowageClient, host: Host): Promise<Grant[]> {
  const volumes = await client.listVolumes();
  const found: Grant[] = [];
  for (let i = 0; i < volumes.length; i += GRANT_SCAN_CONCURRENCY) {
    const batch = volumes.slice(i, i + GRANT_SCAN_CONCURRENCY);
    // A volume deleted meanwhile has no grants left; any other error stops the command.
    const grants = await Promise.all(batch.map((v) => client.listGrants(v.id).catch((err: unknown) => {
      if (err instanceof ApiError && err.code === 'VOLUME_NOT_FOUND') return [] as Grant[];
      throw err;
    })));
    for (const g of grants.flat()) if (g.hostId === host.id) found.push(withoutSecret(g));
  }
  return found;
}

/** What `host fence` prints: the revoked access and the cut attachments. */
function fenceText(host: Host, note: string | undefined, grants: readonly Grant[], cut: readonly Attachment[]): string {
  const parts = [`host ${host.name} is ${host.state}${note ? `: ${note}` : ''}\n`];
  parts.push(grants.length
    ? `\nAccess revoked:\n${renderTable(['volume', 'mode'], grants.map((g) => [g.volumeName, g.mode]))}`
    : '\nno access to revoke\n');
  if (cut.length) parts.push(`\nAttachments cut:\n${attachmentTable(cut)}`);
  return parts.join('');
}

/** What `host create` and `host enroll` print about the agent's one-time enrollment token. */
function enrollmentText(e: EnrollmentAnswer, apiUrl: string): string {
  return [
    `Agent enrollment token for ${e.host} (one-time, expires ${formatTime(e.expiresAt)}):`,
    `  ${e.token}`,
    `On ${e.host}: stowage agent --host ${e.host} --api ${apiUrl} --enroll <that token> --vm-dir DIR`,
    e.apiFingerprint ? `(the token pins the API certificate ${e.apiFingerprint}; the agent refuses any other)` : '(the API serves plain HTTP: use this only on loopback or a trusted network)',
    '',
  ].join('\n');
}

/** `stowage host …`: create, list, show, update, delete, fence, unfence, evacuate. */
export function register(program: Command, ctx: CliContext): void {
  const host = program.command('host').description('Register hosts and control their access: fence, unfence, evacuate');
  const show = (format: OutputFormat, h: Host): void => { emit(ctx.stdout, format, h, () => hostFields(h, ctx.now())); };

  addRestrictionFlags(host.command('create')
    .description('Register a host that volumes can be granted or attached to')
    .argument('<name>', 'host name'))
    .option('--initiator-name <iqn>', 'its iSCSI initiator name, e.g. iqn.2024-01.com.example:hv1')
    .option('--address <ip>', 'an address storage sees it come from (repeatable)', collect)
    .option('--zone <zone>', 'its failure zone')
    .addOption(outputOption())
    .addHelpText('after', `
A host's agent (\`stowage agent --host NAME\`) registers it on its first report too, and keeps its
addresses, connectors and instances up to date.

Examples:
  $ stowage host create hv1 --initiator-name iqn.2024-01.com.example:hv1 --address 10.0.0.11 --zone a
  $ stowage host create hv2 --address 10.0.0.12 --address fd00::12
`)
    .action(async (name: string, o: CreateFlags, cmd: Command) => {
      const client = ctx.client(cmd);
      const h = await client.createHost(compact({
        name, initiatorName: nonEmpty(o.initiatorName),
        addresses: o.address && [...new Set(o.address)], zone: nonEmpty(o.zone), ...restrictionBody(o),
      }));
      const e = await client.enrollHost(h.id);
      emit(ctx.stdout, o.output, { ...h, enrollment: e }, () => `${hostFields(h, ctx.now())}\n${enrollmentText(e, client.url)}`);
    });

  host.command('enroll')
    .description('Print a new one-time enrollment token for the host\'s agent (using it revokes the agent\'s earlier credential)')
    .argument('<host>', 'host name or id')
    .option('--ttl <ms>', 'lifetime of the token in ms (default: the server\'s nodeEnrollTtlMs, 1 h)')
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage host enroll hv1
  $ stowage host enroll hv1 -o json | jq -r .token > /root/hv1.enroll
`)
    .action(async (ref: string, o: OutputFlags & { ttl?: string }, cmd: Command) => {
      const ttlMs = o.ttl === undefined ? undefined : Number(o.ttl);
      if (ttlMs !== undefined && (!Number.isInteger(ttlMs) || ttlMs < 60_000)) throw usageError('VALIDATION_FAILED', '--ttl is in ms, at least 60000');
      const client = ctx.client(cmd);
      const e = await client.enrollHost(ref, ttlMs);
      emit(ctx.stdout, o.output, e, () => enrollmentText(e, client.url));
    });

  host.command('list')
    .alias('ls')
    .description('List hosts with state, addresses, initiator, zone, agent heartbeat and instances')
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage host list
  $ stowage host list -o json | jq -r '.[] | select(.state == "down") | .name'
`)
    .action(async (o: OutputFlags, cmd: Command) => {
      const items = await ctx.client(cmd).listHosts();
      emit(ctx.stdout, o.output, items, () => (items.length ? hostTable(items, ctx.now()) : 'no hosts; register one with `stowage host create`\n'));
    });

  host.command('show')
    .description('Show one host')
    .argument('<name>', 'host name or id')
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage host show hv1
  $ stowage host show hv1 -o json | jq .instances
`)
    .action(async (name: string, o: OutputFlags, cmd: Command) => {
      show(o.output, await ctx.client(cmd).getHost(name));
    });

  addRestrictionFlags(host.command('update')
    .description('Change a host\'s initiator name, addresses, zone or the tenants that may use it')
    .argument('<name>', 'host name or id'))
    .option('--initiator-name <iqn>', 'the new iSCSI initiator name')
    .option('--clear-initiator-name', 'remove the initiator name (access is then bound to addresses only)')
    .option('--address <ip>', 'an address (repeatable; replaces the list)', collect)
    .option('--zone <zone>', 'the new zone ("" clears it)')
    .addOption(outputOption())
    .addHelpText('after', `
Existing grants keep the identity they were made with until they are granted again.

Examples:
  $ stowage host update hv1 --address 10.0.0.21 --address 10.0.0.22
  $ stowage host update hv1 --initiator-name iqn.2024-01.com.example:hv1-new
  $ stowage host update hv1 --zone ""
  $ stowage host update hv1 --tenant acme        # only acme's volumes may be attached to it
`)
    .action(async (name: string, o: UpdateFlags, cmd: Command) => {
      if (o.initiatorName !== undefined && o.clearInitiatorName) throw usageError('VALIDATION_FAILED', 'pass --initiator-name or --clear-initiator-name, not both');
      const body: UpdateHostInput = compact({
        initiatorName: o.clearInitiatorName ? null : o.initiatorName,
        addresses: o.address && [...new Set(o.address)], zone: o.zone, ...restrictionBody(o),
      });
      if (Object.keys(body).length === 0) throw usageError('VALIDATION_FAILED', 'nothing to change; pass at least one of --initiator-name, --clear-initiator-name, --address, --zone, --tenant, --shared');
      show(o.output, await ctx.client(cmd).updateHost(name, body));
    });

  host.command('delete')
    .alias('rm')
    .description('Delete a host that has no access left')
    .argument('<name>', 'host name or id')
    .addOption(outputOption())
    .addHelpText('after', `
Fails with HOST_IN_USE while the host still has grants or attachments; detach or revoke them first.

Example:
  $ stowage host delete hv9
`)
    .action(async (name: string, o: OutputFlags, cmd: Command) => {
      await ctx.client(cmd).deleteHost(name);
      emit(ctx.stdout, o.output, { deleted: name }, () => `host ${name} deleted\n`);
    });

  addWaitFlags(host.command('fence')
    .description('Cut a host off: revoke every grant it has and drop its live sessions, then mark it fenced')
    .argument('<name>', 'host name or id')
    .option('-y, --yes', 'do not ask for confirmation (required when stdin is not a terminal)'))
    .addHelpText('after', `
Use it when a host is down or misbehaving: until it is fenced, its read-write volumes cannot be
attached anywhere else. Prints what was revoked and which attachments were cut. A fenced host
gets no access until \`stowage host unfence\`. With -o json: {host, operation, revokedGrants,
cutAttachments} (no secrets).

Examples:
  $ stowage host fence hv1 --yes
  $ stowage host fence hv1 --yes && stowage host evacuate hv1 --to hv2
`)
    .action(async (name: string, o: WaitFlags & { yes?: boolean }, cmd: Command) => {
      if (!o.yes && !(await ctx.confirm(`Fence host ${name}? It loses access to every volume at once.`))) {
        throw usageError('VALIDATION_FAILED', `not fencing host ${name} without confirmation`, ['pass --yes to fence without asking']);
      }
      const client = ctx.client(cmd);
      const before = await client.getHost(name);
      const [grants, live] = o.wait ? await Promise.all([grantsOfHost(client, before), client.listAttachments({ host: before.id })]) : [[], []];
      const op = await client.fenceHost(before.id);
      if (!o.wait) {
        emit(ctx.stdout, o.output, op, () => `fencing host ${before.name}\n`);
        submittedNote(ctx, op);
        return;
      }
      const done = assertSucceeded(await waitForOperation(ctx, client, op, { timeoutMs: o.timeout, label: `fence ${before.name}` }));
      const after = await client.getHost(before.id);
      const liveIds = new Set(live.map((a) => a.id));
      const cut = (await client.listAttachments({ host: before.id, all: true })).filter((a) => liveIds.has(a.id));
      emit(ctx.stdout, o.output, { host: after, operation: done, revokedGrants: grants, cutAttachments: cut },
        () => fenceText(after, stepNote(done, 'revoke'), grants, cut));
    });

  host.command('unfence')
    .description('Return a fenced host to service (its agent brings it up on its next report)')
    .argument('<name>', 'host name or id')
    .addOption(outputOption())
    .addHelpText('after', `
Example:
  $ stowage host unfence hv1
`)
    .action(async (name: string, o: OutputFlags, cmd: Command) => {
      const client = ctx.client(cmd);
      await client.unfenceHost(name);
      show(o.output, await client.getHost(name));
    });

  addWaitFlags(host.command('evacuate')
    .description('Attach every volume a fenced host had to the same-named instances on another host')
    .argument('<name>', 'the fenced host (name or id)')
    .requiredOption('--to <host>', 'the host taking over (name or id)'))
    .addHelpText('after', `
Waits for every attach (the agent on the new host connects them) and prints the new attachments.
Fails with HOST_NOT_FENCED unless the host was fenced first. With -o json: the attachments.

Examples:
  $ stowage host evacuate hv1 --to hv2
  $ stowage host evacuate hv1 --to hv2 --no-wait -o json
`)
    .action(async (name: string, o: WaitFlags & { to: string }, cmd: Command) => {
      const client = ctx.client(cmd);
      const ops = await client.evacuateHost(name, o.to);
      if (!o.wait) {
        emit(ctx.stdout, o.output, ops, () => `${ops.length} attach operation(s) submitted\n`);
        for (const op of ops) submittedNote(ctx, op);
        return;
      }
      const pending = await Promise.all(ops.map((op) => client.getAttachment(op.targetId)));
      const done = await waitAll(ctx, client, ops.map((op, i) => {
        const a = pending[i];
        return { op, label: a ? `attach ${a.volumeName} to ${a.hostName}/${a.instance}` : `attach ${op.targetId}` };
      }), o.timeout);
      const attachments = await Promise.all(done.map((op) => client.getAttachment(op.targetId)));
      emit(ctx.stdout, o.output, attachments, () => (attachments.length ? attachmentTable(attachments) : `nothing to evacuate from ${name}\n`));
      throwFirstFailure(done);
    });
}
