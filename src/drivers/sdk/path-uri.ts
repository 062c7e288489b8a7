import path from 'node:path';
import { StowageError } from '../../core/errors.js';

/** A `scheme:///absolute/dir[?query]` URI after decoding, normalising and validating its path. */
export interface PathUri {
  /** The directory actually used: absolute, `.`/`..`/`//` resolved, no trailing slash, never `/`. */
  readonly dir: string;
  /** The query string as typed, with its `?` (empty when none). */
  readonly search: string;
  /** The URI to store and show: the same scheme and query, the path replaced by `dir` (%-encoded). */
  readonly canonical: string;
}

/** Characters a path keeps as they are in the canonical URI; everything else is %-encoded. */
const PLAIN_PATH_CHAR = /[A-Za-z0-9\-._~!$&'()*+,;=:@/]/;

function encodePath(dir: string): string {
  return dir.replace(/[^/]/gu, (c) => (PLAIN_PATH_CHAR.test(c) ? c : encodeURIComponent(c)));
}

/**
 * Parses the path of a local-directory driver URI from the text exactly as the operator typed it
 * (the WHATWG URL parser has already resolved `..` by the time a factory sees a URL, so its errors
 * could not say what was typed). The path is %-decoded once, then normalised, then validated; what
 * comes back is the directory the driver will really use and the URI that names exactly it.
 * Throws INVALID_DRIVER_URI naming the URI as typed and what is wrong with it.
 */
export function parsePathUri(typed: string, scheme: string, expected: string): PathUri {
  const bad = (why: string): StowageError =>
    new StowageError('INVALID_DRIVER_URI', `${scheme} driver URI ${JSON.stringify(typed)} ${why}; expected ${expected}`, { uri: typed });
  const prefix = `${scheme}://`;
  if (typed.slice(0, prefix.length).toLowerCase() !== prefix) throw bad(`does not start with ${prefix}/ (three slashes, then an absolute path)`);
  const rest = typed.slice(prefix.length);
  if (rest.includes('#')) throw bad('has a #fragment, which is not allowed');
  const authorityEnd = rest.search(/[/?]/);
  const authority = authorityEnd === -1 ? rest : rest.slice(0, authorityEnd);
  if (authority !== '') throw bad(`names a host ("${authority}"); a local directory takes three slashes: ${prefix}/path`);
  const queryAt = rest.indexOf('?');
  const rawPath = queryAt === -1 ? rest : rest.slice(0, queryAt);
  const search = queryAt === -1 ? '' : rest.slice(queryAt);
  if (rawPath === '') throw bad('has no path');
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    throw bad(`has a broken %-escape in its path ${JSON.stringify(rawPath)}`);
  }
  if (/[\u0000-\u001f\u007f]/.test(decoded)) throw bad('has a control character (such as NUL or a newline) in its path');
  const dir = path.posix.resolve(decoded);
  if (dir === '/') {
    throw bad(decoded === '/' ? 'names the filesystem root, which cannot be a volume directory'
      : `has the path ${JSON.stringify(decoded)}, which resolves to the filesystem root; a volume directory must be below it`);
  }
  return { dir, search, canonical: `${prefix}${encodePath(dir)}${search}` };
}
