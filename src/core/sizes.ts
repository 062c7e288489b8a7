import { StowageError } from './errors.js';

const UNITS: Readonly<Record<string, number>> = {
  '': 1, b: 1,
  k: 1024, kb: 1000, kib: 1024,
  m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3,
  t: 1024 ** 4, tb: 1000 ** 4, tib: 1024 ** 4,
  p: 1024 ** 5, pb: 1000 ** 5, pib: 1024 ** 5,
};

/**
 * Largest size accepted anywhere: 4 PiB (2^52), inside Number.MAX_SAFE_INTEGER with room for sums.
 * (8 PiB would be 2^53, which is not a safe integer, so it could never be accepted.)
 */
export const MAX_SIZE_BYTES = 4 * 1024 ** 5;

/**
 * Parses a human size into bytes. `10G`, `10GiB` and `10g` are binary (GiB); `10GB` is decimal.
 * A bare number is bytes. Throws INVALID_SIZE for anything else, zero, fractions of a byte, or
 * sizes above MAX_SIZE_BYTES.
 */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m?.[2]?.toLowerCase();
  const factor = unit === undefined ? undefined : UNITS[unit];
  if (!m?.[1] || factor === undefined) {
    throw new StowageError('INVALID_SIZE', `"${text}" is not a size; use a number with a unit such as 512MiB, 10G or 1T`, { input: text });
  }
  const bytes = Number(m[1]) * factor;
  if (!Number.isInteger(bytes)) {
    throw new StowageError('INVALID_SIZE', `"${text}" is not a whole number of bytes`, { input: text });
  }
  assertValidSize(bytes, text);
  return bytes;
}

/** Throws INVALID_SIZE unless `bytes` is a positive safe integer no larger than MAX_SIZE_BYTES. */
export function assertValidSize(bytes: number, input: string | number = bytes): void {
  if (!Number.isInteger(bytes) || bytes <= 0) {
    throw new StowageError('INVALID_SIZE', `size must be a positive whole number of bytes, got ${String(input)}`, { input });
  }
  if (bytes > MAX_SIZE_BYTES) {
    // Exact digits: String(2 ** 64) would print 18446744073709552000, not what the caller sent.
    const shown = typeof input === 'number' ? BigInt(input).toString() : input;
    throw new StowageError('INVALID_SIZE', `size ${shown} is larger than the maximum of ${formatSize(MAX_SIZE_BYTES)}`, { input, maxBytes: MAX_SIZE_BYTES });
  }
}

/** Formats bytes for people: `1.5 GiB`, `512 MiB`, `0 B`. */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes)) return '-';
  const sign = bytes < 0 ? '-' : '';
  let v = Math.abs(bytes);
  const names = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (v >= 1024 && i < names.length - 1) { v /= 1024; i++; }
  const digits = i === 0 || v >= 100 || Number.isInteger(v) ? 0 : 1;
  return `${sign}${v.toFixed(digits)} ${names[i] ?? 'B'}`;
}
