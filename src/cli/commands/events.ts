import type { Command } from 'commander';
import type { StowageEvent } from '../../core/schemas/event-schema.js';
import { ID_PREFIXES, isId, type IdKind } from '../../core/ids.js';
import type { StowageClient } from '../client.js';
import { sleep, type CliContext } from '../context.js';
import { ApiError, CliError } from '../errors.js';
import { emit, formatTime, outputOption, renderTable, type OutputFormat } from '../output.js';
import { intArg } from '../parse.js';

interface EventFlags {
  resource?: string;
  type?: string;
  limit: number;
  follow?: boolean;
  allTenants?: boolean;
  output: OutputFormat;
}

/** How often `events --follow` asks for new events, in ms. */
const FOLLOW_POLL_MS = 1000;
const HEADERS = ['time', 'actor', 'resource', 'action', 'from → to', 'message'] as const;

function cells(e: StowageEvent): string[] {
  const change = e.fromState || e.toState ? `${e.fromState ?? '-'} → ${e.toState ?? '-'}` : '-';
  return [formatTime(e.at), e.actor, `${e.resourceType}/${e.resourceName ?? e.resourceId}`, e.action, change, e.message];
}

/** The events table, oldest first. */
export function eventTable(items: readonly StowageEvent[]): string {
  return renderTable(HEADERS, items.map(cells));
}

/** Minimum column widths of --follow lines (rows arrive over time, so they cannot be measured). */
const FOLLOW_WIDTHS = [19, 8, 24, 10, 22] as const;

function padded(values: readonly string[]): string {
  return `${values.map((c, i) => c.padEnd(FOLLOW_WIDTHS[i] ?? 0)).join('  ').trimEnd()}\n`;
}

/** One event as a line with fixed minimum column widths (for --follow). */
export function eventLine(e: StowageEvent): string {
  return padded(cells(e));
}

function looksLikeId(value: string): boolean {
  return (Object.keys(ID_PREFIXES) as IdKind[]).some((k) => isId(k, value));
}

/** Turns a resource name into its id: a volume first, then a backend (or only the given type). */
async function resolveResource(client: StowageClient, ref: string, type: string | undefined): Promise<string> {
  if (looksLikeId(ref)) return ref;
  const lookups: [string, () => Promise<{ id: string }>][] = [
    ['volume', () => client.getVolume(ref)],
    ['backend', () => client.getBackend(ref)],
  ];
  for (const [kind, lookup] of lookups) {
    if (type && type !== kind) continue;
    try {
      return (await lookup()).id;
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
  }
  throw new CliError('NOT_FOUND', `no ${type ?? 'volume or backend'} named "${ref}"; pass a name or an id`);
}

/** `stowage events`: the audit log, optionally followed. */
export function register(program: Command, ctx: CliContext): void {
  program.command('events')
    .description('Show the audit log of state changes (oldest first), optionally following new ones')
    .option('--resource <id|name>', 'only events of this resource (an id, or a volume or backend name)')
    .option('--type <type>', 'only events of this resource type, e.g. volume or backend')
    .option('--limit <n>', 'how many recent events to show first', intArg(1, 1000), 50)
    .option('-f, --follow', 'keep printing new events as they happen (Ctrl-C to stop)')
    .option('--all-tenants', 'admins: every tenant\'s events, not only their own tenant\'s')
    .addOption(outputOption())
    .addHelpText('after', `
With -o json: the events as an array, or with --follow one JSON object per line.

Examples:
  $ stowage events
  $ stowage events --type volume --limit 20
  $ stowage events --resource db1
  $ stowage events --follow
  $ stowage events --follow -o json | jq -r .message
`)
    .action(async (o: EventFlags, cmd: Command) => {
      const client = ctx.client(cmd);
      const resource = o.resource ? await resolveResource(client, o.resource, o.type) : undefined;
      const page = await client.listEvents({ limit: o.limit, resource, type: o.type, allTenants: o.allTenants });
      const recent = [...page.items].reverse();
      if (!o.follow) {
        emit(ctx.stdout, o.output, recent, () => (recent.length ? eventTable(recent) : 'no events\n'));
        return;
      }
      const print = (e: StowageEvent): void => { ctx.stdout.write(o.output === 'json' ? `${JSON.stringify(e)}\n` : eventLine(e)); };
      if (o.output === 'table') ctx.stdout.write(padded(HEADERS.map((h) => h.toUpperCase())));
      recent.forEach(print);
      let after = recent.reduce((max, e) => Math.max(max, e.seq), 0);
      const signal = ctx.interrupt();
      while (!signal.aborted) {
        await sleep(FOLLOW_POLL_MS, signal);
        if (signal.aborted) break;
        let items: StowageEvent[];
        try {
          items = (await client.listEvents({ limit: 1000, after, resource, type: o.type, allTenants: o.allTenants }, signal)).items;
        } catch (err) {
          if (signal.aborted) break;
          throw err;
        }
        for (const e of items) {
          print(e);
          after = Math.max(after, e.seq);
        }
      }
    });
}
