import { InvalidArgumentError } from 'commander';
import { StowageError } from '../core/errors.js';
import { parseSize } from '../core/sizes.js';

/** Option parsers for commander: each throws InvalidArgumentError, which commander reports as a usage error (exit 2). */

/** Parses a human size (`10G`, `512MiB`, `1T`) into bytes. */
export function sizeArg(text: string): number {
  try {
    return parseSize(text);
  } catch (err) {
    if (err instanceof StowageError) throw new InvalidArgumentError(`${err.message} (INVALID_SIZE)`);
    throw err;
  }
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration (`500ms`, `2s`, `10m`, `1h`, `30d`, a bare number is seconds) into ms. */
export function durationArg(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  const factor = DURATION_UNITS_MS[m?.[2] ?? 's'];
  if (!m?.[1] || factor === undefined) throw new InvalidArgumentError(`"${text}" is not a duration; use e.g. 500ms, 2s, 10m, 1h or 30d`);
  const ms = Math.round(Number(m[1]) * factor);
  if (ms <= 0) throw new InvalidArgumentError(`the duration must be longer than 0, got "${text}"`);
  return ms;
}

/** Parses a whole number within [min, max]. */
export function intArg(min: number, max: number): (text: string) => number {
  return (text) => {
    const n = /^\s*-?\d+\s*$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}, got "${text}"`);
    return n;
  };
}

/** Parses a number within [min, max] (`maxExclusive` excludes max). */
export function numberArg(min: number, max: number, maxExclusive = false): (text: string) => number {
  return (text) => {
    const n = /^\s*-?\d+(\.\d+)?\s*$/.test(text) ? Number(text) : NaN;
    if (!Number.isFinite(n) || n < min || n > max || (maxExclusive && n === max)) {
      throw new InvalidArgumentError(`expected a number from ${min} to ${max}${maxExclusive ? ' (exclusive)' : ''}, got "${text}"`);
    }
    return n;
  };
}

/** Collects a repeatable option into a list. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Collects repeatable `key=value` options into a record. */
export function collectKeyValue(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const i = value.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError(`"${value}" is not key=value`);
  return { ...(previous ?? {}), [value.slice(0, i)]: value.slice(i + 1) };
}

/** Capability overrides collected from `+cap` (add) and `-cap` (remove) options. */
export interface CapabilityEdits {
  readonly add: string[];
  readonly remove: string[];
}

/** Collects repeatable `+capability` / `-capability` options. */
export function collectCapability(value: string, previous: CapabilityEdits | undefined): CapabilityEdits {
  const prev = previous ?? { add: [], remove: [] };
  const sign = value[0];
  const name = value.slice(1);
  if ((sign !== '+' && sign !== '-') || !name) {
    throw new InvalidArgumentError(`"${value}" must be +CAPABILITY (add) or -CAPABILITY (remove), e.g. +snapshot.offload or -thin`);
  }
  return sign === '+'
    ? { add: [...prev.add.filter((c) => c !== name), name], remove: prev.remove.filter((c) => c !== name) }
    : { add: prev.add.filter((c) => c !== name), remove: [...prev.remove.filter((c) => c !== name), name] };
}
