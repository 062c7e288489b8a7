import path from 'node:path';
import { StowageError } from '../../core/errors.js';
import type { VolumeFormat } from '../../core/states.js';

/** A dir backend's compiled configuration. */
export interface DirConfig {
  /** Absolute, normalized directory holding the image files. */
  readonly dir: string;
  /** Format for volumes created without an explicit format. */
  readonly defaultFormat: VolumeFormat;
}

const ALLOWED_OPTIONS = ['format'] as const;

function invalid(uri: URL, reason: string): StowageError {
  return new StowageError('INVALID_DRIVER_URI', `"${uri.href}" is not a dir driver URI: ${reason}; expected dir:///absolute/path[?format=raw|qcow2]`, { uri: uri.href });
}

/**
 * Validates `dir:///absolute/path` plus options (from the query string or `options`; only `format`
 * = raw|qcow2, default raw) and returns the compiled config. Throws INVALID_DRIVER_URI.
 */
export function parseDirUri(uri: URL, options: Readonly<Record<string, string>> = {}): DirConfig {
  if (uri.protocol !== 'dir:') throw invalid(uri, 'the scheme must be dir');
  if (uri.host !== '' || uri.username !== '' || uri.password !== '' || uri.port !== '') {
    throw invalid(uri, `a host (${uri.host}) is not allowed; use three slashes`);
  }
  if (uri.hash !== '') throw invalid(uri, 'a #fragment is not allowed');
  let decoded: string;
  try {
    decoded = decodeURIComponent(uri.pathname);
  } catch {
    throw invalid(uri, 'the path has a broken %-escape');
  }
  if (!decoded.startsWith('/') || decoded.includes('\0')) throw invalid(uri, 'the path must be absolute');
  const dir = path.resolve(decoded);
  if (dir === '/') throw invalid(uri, 'the filesystem root cannot be a volume directory');

  const merged = new Map<string, string>();
  for (const [k, v] of uri.searchParams) merged.set(k, v);
  for (const [k, v] of Object.entries(options)) {
    const prev = merged.get(k);
    if (prev !== undefined && prev !== v) throw invalid(uri, `option ${k} is given twice with different values`);
    merged.set(k, v);
  }
  for (const k of merged.keys()) {
    if (!(ALLOWED_OPTIONS as readonly string[]).includes(k)) throw invalid(uri, `unknown option "${k}" (known: ${ALLOWED_OPTIONS.join(', ')})`);
  }
  const format = merged.get('format') ?? 'raw';
  if (format !== 'raw' && format !== 'qcow2') throw invalid(uri, `format must be raw or qcow2, got "${format}"`);
  return { dir, defaultFormat: format };
}
