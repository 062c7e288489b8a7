import { sql, type SelectQueryBuilder } from 'kysely';
import { StowageError } from '../core/errors.js';

/** One page asked for: at most `limit` items after the position `cursor` names (the previous page's nextCursor). */
export interface PageRequest {
  readonly limit: number;
  readonly cursor?: string | undefined;
}

/** One page of rows and the cursor of the next page (null on the last). */
export interface RowPage<R> {
  readonly rows: R[];
  readonly nextCursor: string | null;
}

// The cursor is the (key, id) of the last item, base64url JSON: opaque to clients, and the same
// format the lists answered when they were paged in memory, so cursors handed out earlier still work.
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
 * Pages `query` in SQL by keyset: ordered by `key` then `id` (both descending if asked), only rows
 * after the cursor's (key, id), `limit + 1` fetched to know whether another page follows. The cursor
 * names a position, not a row, so a page stays correct when the row it ended on is deleted meanwhile.
 * `query` must select from one table with `key` and `id` columns (unqualified names).
 */
export async function keysetPage<DB, TB extends keyof DB, R extends { readonly id: string }>(
  query: SelectQueryBuilder<DB, TB, R>,
  key: keyof R & string,
  page: PageRequest,
  descending = false,
): Promise<RowPage<R>> {
  let q = query;
  if (page.cursor !== undefined) {
    const [k, id] = decodeCursor(page.cursor);
    q = q.where(sql<boolean>`(${sql.ref(key)}, ${sql.ref('id')}) ${descending ? sql`<` : sql`>`} (${k}, ${id})`);
  }
  const direction = descending ? 'desc' : 'asc';
  const rows = await q.orderBy(sql.ref(key), direction).orderBy(sql.ref('id'), direction).limit(page.limit + 1).execute();
  const items = rows.slice(0, page.limit);
  const last = items.at(-1);
  return { rows: items, nextCursor: rows.length > page.limit && last ? encodeCursor(String(last[key]), last.id) : null };
}
