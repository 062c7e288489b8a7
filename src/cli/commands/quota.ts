import type { Command } from 'commander';
import type { QuotaLine, QuotaReport, SetQuotaInput } from '../../core/schemas/quota-schema.js';
import { compact } from '../../core/compact.js';
import { formatSize, parseSize } from '../../core/sizes.js';
import type { CliContext } from '../context.js';
import { usageError } from '../errors.js';
import { emit, outputOption, renderTable, type OutputFormat } from '../output.js';

/** Words that clear a limit. */
const UNLIMITED = ['none', 'unlimited'];

function amount(l: QuotaLine, n: number | null): string {
  if (n === null) return 'unlimited';
  return l.quota === 'bytes' ? formatSize(n) : String(n);
}

/** The quota table: one line per kind and scope. */
export function quotaTable(r: QuotaReport): string {
  return `tenant ${r.tenant}\n${renderTable(['quota', 'scope', 'used', 'limit', 'free'],
    r.lines.map((l) => [l.quota, l.scope, amount(l, l.used), amount(l, l.limit), l.free === null ? '-' : amount(l, l.free)]))}`;
}

/** A count flag: a non-negative whole number, or none/unlimited (null). */
function countLimit(flag: string, v: string | undefined): number | null | undefined {
  if (v === undefined) return undefined;
  if (UNLIMITED.includes(v.toLowerCase())) return null;
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw usageError('VALIDATION_FAILED', `${flag} takes a whole number or "none", got "${v}"`);
  return Number(v);
}

function sizeLimit(v: string | undefined): number | null | undefined {
  if (v === undefined) return undefined;
  if (UNLIMITED.includes(v.toLowerCase())) return null;
  return v.trim() === '0' ? 0 : parseSize(v);
}

interface SetFlags { tenant: string; class?: string; volumes?: string; size?: string; snapshots?: string; output: OutputFormat }

/** `stowage quota …`: limits per tenant and per class, and usage against them. */
export function register(program: Command, ctx: CliContext): void {
  const quota = program.command('quota').description('Quotas per tenant and per class: volumes, provisioned bytes, snapshots, and usage against them');

  quota.command('show')
    .description("Show quotas with usage (your own tenant's, or --tenant's as an admin)")
    .option('--tenant <tenant>', 'tenant name or id (admins)')
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  $ stowage quota show
  $ stowage quota show --tenant acme -o json
`)
    .action(async (o: { tenant?: string; output: OutputFormat }, cmd: Command) => {
      const r = await ctx.client(cmd).showQuota(o.tenant);
      emit(ctx.stdout, o.output, r, () => quotaTable(r));
    });

  quota.command('set')
    .description('Set limits of a tenant, or of one class within it (admins); a flag not given stays as it is')
    .requiredOption('--tenant <tenant>', 'tenant name or id')
    .option('--class <class>', 'limit only volumes of this storage class (and their snapshots)')
    .option('--volumes <n>', 'live volumes at most ("none" or "unlimited" clears it)')
    .option('--size <size>', 'provisioned size of live volumes at most, e.g. 100G ("none" clears it)')
    .option('--snapshots <n>', 'live snapshots at most ("none" clears it)')
    .addOption(outputOption())
    .addHelpText('after', `
Creates, grows and snapshots past a limit fail with QUOTA_EXCEEDED; a limit below current usage only
stops growth.

Examples:
  $ stowage quota set --tenant acme --volumes 100 --size 2T --snapshots 500
  $ stowage quota set --tenant acme --class gold --size 500G
  $ stowage quota set --tenant acme --size none
`)
    .action(async (o: SetFlags, cmd: Command) => {
      const body: SetQuotaInput = compact({
        class: o.class, maxVolumes: countLimit('--volumes', o.volumes), maxBytes: sizeLimit(o.size), maxSnapshots: countLimit('--snapshots', o.snapshots),
      });
      if (o.volumes === undefined && o.size === undefined && o.snapshots === undefined) {
        throw usageError('VALIDATION_FAILED', 'nothing to set', ['pass --volumes, --size or --snapshots']);
      }
      const r = await ctx.client(cmd).setQuota(o.tenant, body);
      emit(ctx.stdout, o.output, r, () => quotaTable(r));
    });
}
