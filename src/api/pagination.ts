import { StowageError } from '../core/errors.js';
import type { PageOf, PageQueryT } from '../core/models.js';

/** How a list is ordered: by a key (a name or a timestamp), ties broken by id. */
export interface PageOrder<T> {
  readonly key: (item: T) => string;
  readonly id: (item: T) => string;
  readonly descending?: boolean;
}

function encodeCursor(key: string, id: string): string {
  return Buffer.from(JSON.stringify([key, id]), 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): readonly [string, string] {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {
    // reported below
  }
  throw new StowageError('VALIDATION_FAILED', 'invalid querystring/cursor: pass the nextCursor of the previous page as is', { cursor: cursor.slice(0, 64) });
}

/**
 * One page of a list in a stable order: the items after the cursor's (key, id), at most `limit`.
 * The cursor names a position, not an item, so a page stays correct when the item it ended on is
 * deleted meanwhile.
 */
export function pageOf<T>(items: readonly T[], q: PageQueryT, order: PageOrder<T>): PageOf<T> {
  const sign = order.descending ? -1 : 1;
  const cmp = (ak: string, ai: string, bk: string, bi: string): number => sign * (ak < bk ? -1 : ak > bk ? 1 : ai < bi ? -1 : ai > bi ? 1 : 0);
  const sorted = [...items].sort((a, b) => cmp(order.key(a), order.id(a), order.key(b), order.id(b)));
  const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
  const rest = after ? sorted.filter((x) => cmp(order.key(x), order.id(x), after[0], after[1]) > 0) : sorted;
  const page = rest.slice(0, q.limit);
  const last = page.at(-1);
  return { items: page, nextCursor: rest.length > q.limit && last ? encodeCursor(order.key(last), order.id(last)) : null };
}

/** Named resources list by name (unique), like volumes. */
export const BY_NAME: PageOrder<{ readonly name: string; readonly id: string }> = { key: (x) => x.name, id: (x) => x.id };
/** Unnamed or per-parent-named resources list by creation, oldest first. */
export const OLDEST_FIRST: PageOrder<{ readonly createdAt: string; readonly id: string }> = { key: (x) => x.createdAt, id: (x) => x.id };
/** Migrations list newest first, as before. */
export const NEWEST_FIRST: PageOrder<{ readonly createdAt: string; readonly id: string }> = { key: (x) => x.createdAt, id: (x) => x.id, descending: true };
