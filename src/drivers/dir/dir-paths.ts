import { randomBytes } from 'node:crypto';
import { lstat, readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { StowageError } from '../../core/errors.js';
import { VOLUME_FORMATS, type VolumeFormat } from '../../core/states.js';

/** A volume id as the dir driver accepts it: `vol-` and 20 lowercase base32 characters. */
export const VOLUME_ID_RE = /^vol-[a-z2-7]{20}$/;

/** A snapshot id as the dir driver accepts it: `snap-` and 20 lowercase base32 characters. */
export const SNAPSHOT_ID_RE = /^snap-[a-z2-7]{20}$/;

/** A finished image file: `<vol|snap id>.<raw|qcow2>`; anything else in the directory is ignored. */
const IMAGE_FILE_RE = /^((?:vol|snap)-[a-z2-7]{20})\.(raw|qcow2)$/;

/** A temporary file the driver writes before renaming/linking it into place. */
const TEMP_FILE_RE = /^\.(?:(?:vol|snap)-[a-z2-7]{20}|stowage-probe)\.tmp-[0-9a-f]{16}$/;

/** Which kind of image an id names. */
export type ImageKind = 'volume' | 'snapshot';

/** Throws VALIDATION_FAILED unless `id` is a well-formed id of `kind` (the only input to file names). */
export function assertImageId(id: unknown, kind: ImageKind): asserts id is string {
  const re = kind === 'volume' ? VOLUME_ID_RE : SNAPSHOT_ID_RE;
  if (typeof id !== 'string' || !re.test(id)) {
    throw new StowageError('VALIDATION_FAILED', `dir driver: ${JSON.stringify(id)} is not a ${kind} id (expected ${kind === 'volume' ? 'vol' : 'snap'}-<20 base32 chars>)`, { id: typeof id === 'string' ? id : String(id), kind });
  }
}

/** Throws VALIDATION_FAILED unless `format` is a known volume format. */
export function assertFormat(format: unknown): asserts format is VolumeFormat {
  if (typeof format !== 'string' || !(VOLUME_FORMATS as readonly string[]).includes(format)) {
    throw new StowageError('VALIDATION_FAILED', `dir driver: unknown image format ${JSON.stringify(format)}; use raw or qcow2`, { format: String(format) });
  }
}

/**
 * Resolves `name` inside `dir` and throws VALIDATION_FAILED if the result is not a direct child of
 * `dir` (defence in depth: names are already built from validated ids only).
 */
export function resolveInside(dir: string, name: string): string {
  const root = path.resolve(dir);
  const full = path.resolve(root, name);
  if (path.dirname(full) !== root || name.includes('/') || name.includes('\0')) {
    throw new StowageError('VALIDATION_FAILED', `dir driver: file name ${JSON.stringify(name)} escapes ${root}`, { name });
  }
  return full;
}

/** The final path of an image: `<dir>/<id>.<format>`, after validating the id and format. */
export function imagePath(dir: string, id: string, kind: ImageKind, format: VolumeFormat): string {
  assertImageId(id, kind);
  assertFormat(format);
  return resolveInside(dir, `${id}.${format}`);
}

/** The id part of the probe file's temp name (used to test writability and reflink support). */
export const PROBE_TEMP_ID = 'stowage-probe';

/** A fresh temporary path for `id` in the same directory (same filesystem, so link/rename is atomic). */
export function tempPath(dir: string, id: string): string {
  if (id !== PROBE_TEMP_ID && !VOLUME_ID_RE.test(id) && !SNAPSHOT_ID_RE.test(id)) {
    throw new StowageError('VALIDATION_FAILED', `dir driver: ${JSON.stringify(id)} is not an image id`, { id });
  }
  return resolveInside(dir, `.${id}.tmp-${randomBytes(8).toString('hex')}`);
}

/** Parses a directory entry name into an image id and format, or undefined for any other file. */
export function parseImageFileName(name: string): { id: string; kind: ImageKind; format: VolumeFormat } | undefined {
  const m = IMAGE_FILE_RE.exec(name);
  if (!m?.[1] || !m[2]) return undefined;
  const format = m[2];
  assertFormat(format);
  return { id: m[1], kind: m[1].startsWith('vol-') ? 'volume' : 'snapshot', format };
}

/** True when `name` is one of the driver's temporary files. */
export function isTempFileName(name: string): boolean {
  return TEMP_FILE_RE.test(name);
}

/** Options for sweepTempFiles. */
export interface SweepOptions {
  /** Only remove temp files whose mtime is at least this old (default 15 minutes). */
  readonly minAgeMs?: number;
  /** Paths to keep no matter their age (temp files of operations still running in this process). */
  readonly keep?: ReadonlySet<string>;
  /** Clock for tests (default Date.now). */
  readonly nowMs?: number;
}

/** Default age before an abandoned temp file is swept. */
export const TEMP_FILE_MIN_AGE_MS = 15 * 60 * 1000;

/**
 * Removes temporary files left by a crash (kill -9 mid-create) from `dir` and returns their names.
 * Only names matching the driver's temp pattern are touched; image files are never removed here.
 */
export async function sweepTempFiles(dir: string, options: SweepOptions = {}): Promise<string[]> {
  const { minAgeMs = TEMP_FILE_MIN_AGE_MS, keep = new Set<string>(), nowMs = Date.now() } = options;
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    if (!isTempFileName(name)) continue;
    const full = resolveInside(dir, name);
    if (keep.has(full)) continue;
    try {
      const st = await lstat(full);
      if (!st.isFile() || nowMs - st.mtimeMs < minAgeMs) continue;
      await unlink(full);
      removed.push(name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return removed.sort();
}
