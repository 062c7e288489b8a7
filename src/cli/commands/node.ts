import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { compact } from '../../core/compact.js';
import type { NodeEnrollment, NodeInfo } from '../../core/schemas/node-schema.js';
import { resolveClientConfig } from '../client-config.js';
import type { CliContext, GlobalOptions } from '../context.js';
import { usageError } from '../errors.js';
import { ago, emit, formatDuration, formatTime, list, outputOption, renderFields, renderTable, type OutputFormat } from '../output.js';
import { durationArg } from '../parse.js';
import { liveTop, type TopFlags } from '../live-top.js';

interface OutputFlags {
  output: OutputFormat;
}

interface CreateFlags extends OutputFlags {
  address: string;
  enrollTtl?: number;
}

interface RunFlags {
  name: string;
  listen: string;
  enroll?: string;
  enrollFile?: string;
  stateDir: string;
  logLevel: string;
}

/** A fingerprint short enough for a table column: `sha256:` and its first 16 hex digits. */
export function shortFingerprint(fp: string | null): string {
  return fp ? `${fp.slice(0, 'sha256:'.length + 16)}…` : '-';
}

/** Clock skew for people: `+12ms`, `-1.5s`, or `-` when unknown. */
function skew(ms: number | null): string {
  if (ms === null) return '-';
  return `${ms >= 0 ? '+' : '-'}${formatDuration(Math.abs(ms))}`;
}

/** The in-flight call count when the API reports one. */
function inFlight(n: NodeInfo): string {
  const v = n.inFlight;
  return typeof v === 'number' ? String(v) : '-';
}

/** The node list table: name, state, version, heartbeat age, clock skew, backends, in-flight calls, key and its expiry. */
export function nodeTable(items: readonly NodeInfo[], nowMs: number): string {
  return renderTable(['name', 'state', 'address', 'version', 'heartbeat', 'skew', 'backends', 'in-flight', 'key', 'key expires'],
    items.map((n) => [n.name, n.state, n.address, n.version ?? '-', ago(n.lastHeartbeatAt, nowMs), skew(n.clockSkewMs), list(n.backends), inFlight(n),
      shortFingerprint(n.keyFingerprint), n.keyExpiresAt ? n.keyExpiresAt.slice(0, 10) : '-']));
}

/** Every field of one node. */
export function nodeFields(n: NodeInfo, nowMs: number): string {
  return renderFields([
    ['Name', n.name],
    ['ID', n.id],
    ['Address', n.address],
    ['State', n.stateReason ? `${n.state} (${n.stateReason})` : n.state],
    ['Admin state', n.adminState],
    ['Version', n.version ?? '-'],
    ['Epoch', String(n.epoch)],
    ['Heartbeat', n.lastHeartbeatAt ? `${formatTime(n.lastHeartbeatAt)} (${ago(n.lastHeartbeatAt, nowMs)})` : 'never'],
    ['Clock skew', skew(n.clockSkewMs)],
    ['Unreachable since', n.unreachableSince ? formatTime(n.unreachableSince) : '-'],
    ['Backends', list(n.backends)],
    ['In flight', inFlight(n)],
    ['Key', n.keyFingerprint ?? 'none pinned (not enrolled)'],
    ['Key expires', n.keyExpiresAt ? formatTime(n.keyExpiresAt) : '-'],
    ['Enrollment open until', n.enrollmentExpiresAt ? formatTime(n.enrollmentExpiresAt) : '-'],
    ['Created', formatTime(n.createdAt)],
    ['Updated', formatTime(n.updatedAt)],
  ]);
}

/**
 * What `node create` and `node rekey` print: the token once, and the exact command to run on the
 * storage server (the token goes in a file or the environment there, never on its command line).
 */
export function enrollmentText(e: NodeEnrollment, apiUrl: string): string {
  const listen = e.node.address;
  return [
    `node ${e.node.name} registered at ${e.node.address}: ${e.node.state}`,
    '',
    `Enrollment token (single use, valid until ${formatTime(e.enrollExpiresAt)}; shown only now):`,
    '',
    `  ${e.enrollToken}`,
    '',
    'On the storage server, put the token in a file only root can read, then run:',
    '',
    `  install -m 600 /dev/null /root/${e.node.name}.token && cat > /root/${e.node.name}.token   # paste the token, then Ctrl-D`,
    `  stowage node run --name ${e.node.name} --listen ${listen} --api ${apiUrl} --enroll-file /root/${e.node.name}.token`,
    '',
    '(or STOWAGE_ENROLL_TOKEN=<token> in its environment; --enroll <token> works too, but shows it in ps)',
    '',
  ].join('\n');
}

/** The enrollment token from --enroll-file, STOWAGE_ENROLL_TOKEN or --enroll (in that order of preference). */
function enrollTokenOf(o: RunFlags, env: Readonly<Record<string, string | undefined>>): string | undefined {
  const given = [o.enrollFile !== undefined, env.STOWAGE_ENROLL_TOKEN !== undefined && env.STOWAGE_ENROLL_TOKEN !== '', o.enroll !== undefined].filter(Boolean).length;
  if (given > 1) throw usageError('VALIDATION_FAILED', 'give the enrollment token once: --enroll-file, STOWAGE_ENROLL_TOKEN or --enroll');
  if (o.enrollFile !== undefined) {
    try {
      return readFileSync(o.enrollFile, 'utf8').trim();
    } catch (err) {
      throw usageError('VALIDATION_FAILED', `cannot read --enroll-file ${o.enrollFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  if (env.STOWAGE_ENROLL_TOKEN) return env.STOWAGE_ENROLL_TOKEN.trim();
  return o.enroll?.trim();
}

/** `stowage node …`: storage nodes (create, list, show, top, drain, resume, rekey, revoke, delete, run). */
export function register(program: Command, ctx: CliContext): void {
  const node = program.command('node').description('Storage nodes: servers that run the drivers of the backends placed on them')
    .addHelpText('after', `
A storage node runs \`stowage node run\` and is called by the control plane over mutual TLS, each side
pinning the other's self-signed certificate at enrollment.

Examples:
  $ stowage node create sn1 --address 10.0.0.5          # prints a one-time token and the command to run on sn1
  $ stowage node list
  $ stowage backend create ssd1 --node sn1 --driver 'tgt://10.0.0.5:3260?backing=btrfs:///srv/pool&control=7'
  $ stowage node drain sn1
`);
  const show = (format: OutputFormat, n: NodeInfo): void => { emit(ctx.stdout, format, n, () => nodeFields(n, ctx.now())); };
  const apiUrlOf = (cmd: Command): string => resolveClientConfig(cmd.optsWithGlobals<GlobalOptions>(), ctx.env).url;

  node.command('create')
    .description('Register a storage node and print its one-time enrollment token')
    .argument('<name>', 'node name')
    .requiredOption('--address <host[:port]>', 'address the control plane calls it at (default port 8751)')
    .option('--enroll-ttl <duration>', 'how long the token is valid, e.g. 30m, 2h (default 1h)', durationArg)
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage node create sn1 --address 10.0.0.5
  $ stowage node create sn2 --address 10.0.0.6:9000 --enroll-ttl 30m -o json
`)
    .action(async (name: string, o: CreateFlags, cmd: Command) => {
      const e = await ctx.client(cmd).createNode(compact({ name, address: o.address, enrollTtlSeconds: o.enrollTtl === undefined ? undefined : Math.round(o.enrollTtl / 1000) }));
      emit(ctx.stdout, o.output, e, () => enrollmentText(e, apiUrlOf(cmd)));
    });

  node.command('list')
    .alias('ls')
    .description('List storage nodes: state, version, heartbeat, clock skew, backends, key')
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage node list
  $ stowage node list -o json | jq '.[] | {name, state}'
`)
    .action(async (o: OutputFlags, cmd: Command) => {
      const items = await ctx.client(cmd).listNodes();
      emit(ctx.stdout, o.output, items, () => (items.length ? nodeTable(items, ctx.now()) : 'no storage nodes; register one with `stowage node create`\n'));
    });

  node.command('show')
    .description('Show one storage node')
    .argument('<name>', 'node name or id')
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage node show sn1
  $ stowage node show sn1 -o json
`)
    .action(async (name: string, o: OutputFlags, cmd: Command) => { show(o.output, await ctx.client(cmd).getNode(name)); });

  registerNodeTop(node, ctx);

  const verbs = [
    ['drain', 'Stop placing new volumes on a node (what it holds keeps serving)'],
    ['resume', 'Undo a drain'],
    ['revoke', 'Clear a node\'s pinned key: it is no longer called until it enrolls again (see rekey)'],
  ] as const;
  for (const [verb, description] of verbs) {
    node.command(verb).description(description).argument('<name>', 'node name or id').addOption(outputOption())
      .addHelpText('after', `\nExamples:\n  $ stowage node ${verb} sn1\n`)
      .action(async (name: string, o: OutputFlags, cmd: Command) => { show(o.output, await ctx.client(cmd).nodeAction(name, verb)); });
  }

  node.command('rekey')
    .description('Print a new one-time enrollment token; the current key stays pinned until the node enrolls with it')
    .argument('<name>', 'node name or id')
    .option('--enroll-ttl <duration>', 'how long the token is valid (default 1h)', durationArg)
    .addOption(outputOption())
    .addHelpText('after', `
Run the printed command on the node: it makes a new key and enrolls it, replacing the old pin.

Examples:
  $ stowage node rekey sn1
`)
    .action(async (name: string, o: OutputFlags & { enrollTtl?: number }, cmd: Command) => {
      const e = await ctx.client(cmd).rekeyNode(name, compact({ enrollTtlSeconds: o.enrollTtl === undefined ? undefined : Math.round(o.enrollTtl / 1000) }));
      emit(ctx.stdout, o.output, e, () => enrollmentText(e, apiUrlOf(cmd)));
    });

  node.command('delete')
    .alias('rm')
    .description('Delete a node no backend runs on')
    .argument('<name>', 'node name or id')
    .addHelpText('after', `
Examples:
  $ stowage node delete sn1
`)
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await ctx.client(cmd).deleteNode(name);
      ctx.stdout.write(`node ${name} deleted\n`);
    });

  node.command('run')
    .description('Run this server as storage node NAME: enroll once, then serve the control plane\'s calls')
    .requiredOption('--name <name>', 'this node\'s name, as `stowage node create` registered it')
    .requiredOption('--listen <host:port>', 'address to listen on (the one given to `node create`, e.g. 10.0.0.5:8751)')
    .option('--enroll-file <file>', 'read the one-time enrollment token from this file (preferred)')
    .option('--enroll <token>', 'the one-time enrollment token (visible in ps: prefer --enroll-file or STOWAGE_ENROLL_TOKEN)')
    .option('--state-dir <dir>', 'where the node keeps its key and its control plane\'s certificate', '/var/lib/stowage-node')
    .option('--log-level <level>', 'fatal|error|warn|info|debug', 'info')
    .addHelpText('after', `
The first run enrolls: it makes its own key, checks that the API shows the certificate the token
pins, sends the token and its certificate, and saves its key (0600) and the control plane's
certificate in the state dir. Later runs need no token. Run it again with a token from
\`stowage node rekey\` to change its key. The token is read from --enroll-file, else the
STOWAGE_ENROLL_TOKEN environment variable, else --enroll; it is never logged.

Examples:
  $ stowage node run --name sn1 --listen 10.0.0.5:8751 --api https://10.0.0.1:8750 --enroll-file /root/sn1.token
  $ STOWAGE_ENROLL_TOKEN=stw1.node.… stowage node run --name sn1 --listen 10.0.0.5:8751 --api https://10.0.0.1:8750
  $ stowage node run --name sn1 --listen 10.0.0.5:8751 --api https://10.0.0.1:8750    # later runs
`)
    .action(async (o: RunFlags, cmd: Command) => {
      const enrollToken = enrollTokenOf(o, ctx.env);
      const apiUrl = cmd.optsWithGlobals<GlobalOptions>().api ?? ctx.env.STOWAGE_URL;
      if (!apiUrl && enrollToken !== undefined) throw usageError('VALIDATION_FAILED', 'enrolling needs the API URL: pass --api https://… (or set STOWAGE_URL)');
      const { runNode } = await import('../../node/run-node.js');
      await runNode(compact({ name: o.name, listen: o.listen, apiUrl: apiUrl ?? '', stateDir: o.stateDir, logLevel: o.logLevel, enrollToken, failpoints: ctx.env.STOWAGE_NODE_FAILPOINTS }));
    });
}

/** Registers `stowage node top`, refreshed in place like `backend top`. */
function registerNodeTop(node: Command, ctx: CliContext): void {
  node.command('top')
    .description('Live state of every storage node, refreshed in place (JSON lines when not on a terminal)')
    .option('--interval <duration>', 'time between refreshes, e.g. 500ms, 2s', durationArg, 2000)
    .option('--once', 'print one snapshot and exit')
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage node top
  $ stowage node top --once -o json
`)
    .action(async (o: TopFlags, cmd: Command) => {
      const client = ctx.client(cmd);
      await liveTop(ctx, client.url, o, { title: 'node top', key: 'nodes', fetch: (signal) => client.listNodes(signal), table: nodeTable });
    });
}

