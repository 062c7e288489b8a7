import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { StowageError } from '../../core/errors.js';
import type { AccessMode } from '../sdk/types.js';

/** Matches the volume ids the tgt driver accepts (the only input to ledger file names). */
export const TGT_VOLUME_ID_RE = /^vol-[a-z2-7]{20}$/;

/** One host's grant on one volume as the tgt driver applied it (tgtd itself remembers no modes or owners). */
export interface LedgerGrant {
  readonly host: string;
  readonly addresses: readonly string[];
  readonly initiatorName?: string;
  readonly mode: AccessMode;
  readonly chapUser?: string;
  /** `salt:sha256(salt+secret)` so a re-grant can tell whether the secret changed; never the secret. */
  readonly chapDigest?: string;
}

/** Salted digest of a CHAP secret for change detection. */
export function chapDigest(secret: string, salt = randomBytes(8).toString('hex')): string {
  return `${salt}:${createHash('sha256').update(salt).update(secret).digest('hex')}`;
}

/** True when `digest` (from chapDigest) was made from `secret`. */
export function chapDigestMatches(digest: string | undefined, secret: string): boolean {
  if (digest === undefined) return false;
  const [salt] = digest.split(':');
  if (salt === undefined) return false;
  const a = Buffer.from(chapDigest(secret, salt));
  const b = Buffer.from(digest);
  return a.length === b.length && timingSafeEqual(a, b);
}

function isLedgerGrant(v: unknown): v is LedgerGrant {
  if (typeof v !== 'object' || v === null) return false;
  const g = v as Record<string, unknown>;
  return typeof g.host === 'string' && Array.isArray(g.addresses) && g.addresses.every((a) => typeof a === 'string') && (g.mode === 'rw' || g.mode === 'ro');
}

/**
 * Per-volume JSON files `<dir>/<volume-id>.json` recording which host got which addresses, mode
 * and CHAP user, so revoke can remove the right account and the LUN's readonly flag can follow
 * the grants. Written via temp file + rename; the exports reconcile rewrites it from desired state.
 */
export class GrantLedger {
  constructor(readonly dir: string) {}

  private file(volumeId: string): string {
    if (!TGT_VOLUME_ID_RE.test(volumeId)) {
      throw new StowageError('VALIDATION_FAILED', `tgt driver: ${JSON.stringify(volumeId)} is not a volume id`, { id: volumeId });
    }
    return path.join(this.dir, `${volumeId}.json`);
  }

  /** The grants recorded for a volume (none when no file). */
  async read(volumeId: string): Promise<LedgerGrant[]> {
    let text: string;
    try {
      text = await readFile(this.file(volumeId), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) ? parsed.filter(isLedgerGrant) : [];
  }

  /** Replaces a volume's grants atomically; an empty list removes the file. */
  async write(volumeId: string, grants: readonly LedgerGrant[]): Promise<void> {
    const file = this.file(volumeId);
    if (grants.length === 0) {
      await unlink(file).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      });
      return;
    }
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
    await writeFile(tmp, `${JSON.stringify(grants, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, file);
  }

  /** Every volume id that has a ledger file. */
  async volumeIds(): Promise<string[]> {
    try {
      return (await readdir(this.dir))
        .filter((n) => n.endsWith('.json'))
        .map((n) => n.slice(0, -'.json'.length))
        .filter((id) => TGT_VOLUME_ID_RE.test(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }
}
