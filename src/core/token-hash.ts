import { createHash } from 'node:crypto';

/** sha256 hex of an API token: what the store keeps and looks up; the token itself is never kept. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
