import { Option } from 'commander';
import { formatSize } from '../core/sizes.js';

/** How a command prints its result: a table (or fields) for people, or the API objects as JSON. */
export const OUTPUT_FORMATS = ['table', 'json'] as const;
/** One of OUTPUT_FORMATS. */
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The `-o, --output` option every command takes. */
export function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS).default('table');
}

/** Where a command writes: stdout or stderr, and whether it is a terminal. */
export interface OutStream {
  write(text: string): void;
  readonly isTTY: boolean;
  /** Writes the CLI's own terminal control sequences unescaped (absent: plain `write`). */
  control?(sequence: string): void;
}

/**
 * Characters a terminal acts on instead of printing: C0 controls except newline and tab, DEL, C1
 * controls, the Unicode line/paragraph separators and the bidirectional overrides/isolates (which
 * make text display in an order other than the one it is in, e.g. to disguise a name).
 */
const TERMINAL_ACTIVE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * Makes text from the API (names, descriptions, agent reports, error messages) safe to show on a
 * terminal: every character a terminal would act on becomes the visible `\uXXXX`, so `\u001b[2J`
 * in a volume name is printed, not executed. The `\uXXXX` form is also a valid JSON escape of the
 * same character, so `-o json` output passed through here is the same JSON value. Idempotent.
 */
export function escapeTerminal(text: string): string {
  return text.replace(TERMINAL_ACTIVE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Wraps a stream so everything written to it is escaped with escapeTerminal: the one place that
 * keeps API-supplied text from driving the operator's terminal (tables, show views, errors, event
 * lines, commander's messages). Only `control` (see writeControl) passes sequences through as they are.
 */
export function safeStream(out: OutStream): OutStream {
  return {
    isTTY: out.isTTY,
    write: (text) => { out.write(escapeTerminal(text)); },
    control: (sequence) => { writeControl(out, sequence); },
  };
}

/** Writes one of the CLI's own terminal control sequences (cursor moves, line clears) unescaped. */
export function writeControl(out: OutStream, sequence: string): void {
  if (out.control) out.control(sequence);
  else out.write(sequence);
}

/** Pretty JSON of an API object, with a trailing newline. */
export function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Renders rows under upper-case headers, columns padded to their widest cell. */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return `${[line(headers.map((h) => h.toUpperCase())), ...rows.map(line)].join('\n')}\n`;
}

/** Renders `label: value` pairs with the values aligned; a value may span several lines. */
export function renderFields(fields: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...fields.map(([k]) => k.length + 1));
  return fields.map(([k, v]) => {
    const [first = '', ...rest] = v.split('\n');
    return [`${`${k}:`.padEnd(width)}  ${first}`.trimEnd(), ...rest.map((r) => `${' '.repeat(width + 2)}${r}`)].join('\n');
  }).join('\n').concat('\n');
}

/** Bytes for people, or `-` when unknown. */
export function size(bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined ? '-' : formatSize(bytes);
}

/** Bytes for people with the exact count: `10 GiB (10737418240 bytes)`. */
export function sizeExact(bytes: number): string {
  return `${formatSize(bytes)} (${bytes} bytes)`;
}

/** A compact age: `45s`, `12m`, `3h`, `2d` (`-` for none). */
export function formatAge(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '-';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** Age of an ISO timestamp relative to `nowMs`, e.g. `5s ago` (`never` for null). */
export function ago(iso: string | null, nowMs: number): string {
  if (!iso) return 'never';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '-' : `${formatAge(nowMs - t)} ago`;
}

/** A duration for people: `850ms`, `4.2s`, `3m10s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** An ISO timestamp as `YYYY-MM-DD HH:MM:SS` UTC (`-` for null). */
export function formatTime(iso: string | null): string {
  if (!iso) return '-';
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace(/Z$/, '');
}

/** A fixed-width bar for a fraction in [0, 1]: `[███░░░░░░░]`. */
export function bar(fraction: number, width = 10): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const full = Math.round(f * width);
  return `[${'█'.repeat(full)}${'░'.repeat(width - full)}]`;
}

/** A percentage with no decimals: `42%`. */
export function percent(fraction: number): string {
  return Number.isFinite(fraction) ? `${Math.round(fraction * 100)}%` : '-';
}

/** A placement score, readable whatever its magnitude (cheapest scores are huge). */
export function formatScore(score: number | null): string {
  if (score === null) return '-';
  return Math.abs(score) >= 1e6 ? score.toExponential(3) : String(Math.round(score * 1000) / 1000);
}

/** Joins a list for a cell, `-` when empty. */
export function list(values: readonly string[]): string {
  return values.length ? values.join(',') : '-';
}

/** Writes `value` as JSON for `-o json`, else the human rendering. */
export function emit(out: OutStream, format: OutputFormat, value: unknown, human: () => string): void {
  out.write(format === 'json' ? toJson(value) : human());
}
