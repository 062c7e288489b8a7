import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_TENANT_ID, newId } from '../../src/core/ids.js';
import { StowageError } from '../../src/core/errors.js';
import { HostRepository } from '../../src/store/access-repository.js';
import { keysetPage, type PageRequest, type RowPage } from '../../src/store/keyset-page.js';
import type { HostRow } from '../../src/store/schema.js';
import type { Store } from '../../src/store/store.js';
import { DIALECTS, openFreshStore } from './store-kit.js';

function hostRow(name: string, createdAt: string): HostRow {
  return {
    id: newId('host'), tenant_id: DEFAULT_TENANT_ID, name, initiator_name: null, addresses: '[]', zone: '', state: 'unknown',
    connectors: '[]', instances: '[]', agent_heartbeat_at: null, created_at: createdAt, updated_at: createdAt, enroll_token_hash: null, enroll_expires_at: null, tenants: null,
  };
}

/** Every page, following nextCursor from the first, as the ids in the order they came. */
async function walk(next: (page: PageRequest) => Promise<RowPage<HostRow>>, limit: number): Promise<string[]> {
  const seen: string[] = [];
  let cursor: string | undefined;
  for (let n = 0; n < 100; n++) {
    const page = await next({ limit, ...(cursor !== undefined ? { cursor } : {}) });
    expect(page.rows.length).toBeLessThanOrEqual(limit);
    seen.push(...page.rows.map((r) => r.id));
    if (page.nextCursor === null) return seen;
    cursor = page.nextCursor;
  }
  throw new Error('more than 100 pages');
}

describe.each(DIALECTS)('keyset pages on %s', (dialect) => {
  const hosts = new HostRepository();
  let store: Store;
  let close: () => Promise<void>;
  // Three rows share one timestamp, so the id must break the tie for every item to come exactly once.
  const at = ['2026-01-01T00:00:01.000Z', '2026-01-01T00:00:02.000Z', '2026-01-01T00:00:02.000Z', '2026-01-01T00:00:02.000Z', '2026-01-01T00:00:03.000Z'];
  let rows: HostRow[];

  beforeEach(async () => {
    ({ store, close } = await openFreshStore(dialect));
    rows = ['pg-c', 'pg-a', 'pg-e', 'pg-b', 'pg-d'].map((name, i) => hostRow(name, at[i] ?? ''));
    for (const r of rows) await hosts.insert(store.db, r);
  });
  afterEach(async () => {
    await close();
  });

  it('pages hosts by name, each exactly once, with no cursor after the last page', async () => {
    const byName = [...rows].sort((a, b) => (a.name < b.name ? -1 : 1)).map((r) => r.id);
    for (const limit of [1, 2, 3, 5, 6]) expect(await walk((p) => hosts.page(store.db, p), limit), `limit ${String(limit)}`).toEqual(byName);
    expect((await hosts.page(store.db, { limit: 5 })).nextCursor).toBeNull();
  });

  it('breaks ties of the key by id, ascending and descending', async () => {
    const cmp = (a: HostRow, b: HostRow): number => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1);
    const oldest = [...rows].sort(cmp).map((r) => r.id);
    const query = () => store.db.selectFrom('hosts').selectAll();
    expect(await walk((p) => keysetPage(query(), 'created_at', p), 2)).toEqual(oldest);
    expect(await walk((p) => keysetPage(query(), 'created_at', p, true), 2)).toEqual([...oldest].reverse());
  });

  it('goes on from the position when the row a page ended on was deleted meanwhile', async () => {
    const first = await hosts.page(store.db, { limit: 2 });
    expect(first.rows.map((r) => r.name)).toEqual(['pg-a', 'pg-b']);
    await store.db.deleteFrom('hosts').where('name', '=', 'pg-b').execute();
    const second = await hosts.page(store.db, { limit: 2, cursor: first.nextCursor ?? '' });
    expect(second.rows.map((r) => r.name)).toEqual(['pg-c', 'pg-d']);
  });

  it('refuses a cursor it did not hand out with VALIDATION_FAILED', async () => {
    for (const cursor of ['not-a-cursor', Buffer.from('[1,2]').toString('base64url'), Buffer.from('["a"]').toString('base64url')]) {
      const err: unknown = await hosts.page(store.db, { limit: 2, cursor }).then(() => null, (e: unknown) => e);
      expect(err, cursor).toBeInstanceOf(StowageError);
      expect((err as StowageError).code, cursor).toBe('VALIDATION_FAILED');
    }
  });
});
