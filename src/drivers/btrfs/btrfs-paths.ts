import path from 'node:path';
import { StowageError } from '../../core/errors.js';

/** A volume id as the btrfs driver accepts it: `vol-` and 20 lowercase base32 characters. */
export const BTRFS_VOLUME_ID_RE = /^vol-[a-z2-7]{20}$/;

/** A snapshot id as the btrfs driver accepts it: `snap-` and 20 lowercase base32 characters. */
export const BTRFS_SNAPSHOT_ID_RE = /^snap-[a-z2-7]{20}$/;

/** The single raw image inside every volume or snapshot subvolume. */
export const DISK_FILE = 'disk.raw';

/** Throws VALIDATION_FAILED unless `id` is a well-formed volume or snapshot id (the only input to paths). */
export function assertSubvolumeId(id: unknown, kind: 'volume' | 'snapshot'): asserts id is string {
  const re = kind === 'volume' ? BTRFS_VOLUME_ID_RE : BTRFS_SNAPSHOT_ID_RE;
  if (typeof id !== 'string' || !re.test(id)) {
    throw new StowageError('VALIDATION_FAILED', `btrfs driver: ${JSON.stringify(id)} is not a ${kind} id (expected ${kind === 'volume' ? 'vol' : 'snap'}-<20 base32 chars>)`, { id: typeof id === 'string' ? id : String(id), kind });
  }
}

/** Resolves `name` as a direct child of `dir`; throws VALIDATION_FAILED if it would escape. */
export function childPath(dir: string, name: string): string {
  const root = path.resolve(dir);
  const full = path.resolve(root, name);
  if (name.includes('/') || name.includes('\0') || path.dirname(full) !== root) {
    throw new StowageError('VALIDATION_FAILED', `btrfs driver: ${JSON.stringify(name)} escapes ${root}`, { name });
  }
  return full;
}

/**
 * The directory a `btrfs:///mountpoint/subdir` URI names: absolute, normalized, no `..`, no query
 * or host. Throws INVALID_DRIVER_URI otherwise.
 */
export function parseBtrfsUri(uri: URL): string {
  const bad = (why: string): StowageError =>
    new StowageError('INVALID_DRIVER_URI', `btrfs driver URI "${uri.href}" ${why}; expected btrfs:///mountpoint/subdir`, { uri: uri.href });
  if (uri.protocol !== 'btrfs:') throw bad('has the wrong scheme');
  if (uri.host !== '') throw bad('must not name a host');
  if (uri.search !== '' || uri.hash !== '') throw bad('must not have a query or fragment (use options)');
  let dir: string;
  try {
    dir = decodeURIComponent(uri.pathname);
  } catch {
    throw bad('has an invalid percent-encoding');
  }
  if (!path.isAbsolute(dir) || dir.includes('\0') || dir.split('/').includes('..')) throw bad('must be an absolute path without ..');
  const normalized = path.resolve(dir);
  if (normalized === '/') throw bad('must not be the root directory');
  return normalized;
}
