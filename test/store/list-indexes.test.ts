import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_TENANT_ID } from '../../src/core/ids.js';
import type { Store } from '../../src/store/store.js';
import { DIALECTS, openFreshStore } from './store-kit.js';

/**
 * The journal's list query (`OperationRepository.list`: a tenant's operations newest first, then
 * after a cursor) is answered from the `operations_tenant_created` index, in index order, on both
 * dialects — no sort of the whole journal. Checked with each database's own EXPLAIN, not timings.
 */
const PAGE = `SELECT * FROM operations WHERE tenant_id = '${DEFAULT_TENANT_ID}' ORDER BY created_at DESC, id DESC LIMIT 101`;
const AFTER = `SELECT * FROM operations WHERE tenant_id = '${DEFAULT_TENANT_ID}' AND (created_at < '2026-01-01T00:00:00.000Z' OR (created_at = '2026-01-01T00:00:00.000Z' AND id < 'op-x')) ORDER BY created_at DESC, id DESC LIMIT 101`;

describe.each(DIALECTS)('list indexes on %s', (dialect) => {
  let store: Store;
  let close: () => Promise<void>;

  beforeEach(async () => {
    ({ store, close } = await openFreshStore(dialect));
  });
  afterEach(async () => {
    await close();
  });

  async function plan(query: string): Promise<string> {
    if (dialect === 'sqlite') {
      const r = await sql<{ detail: string }>`${sql.raw(`EXPLAIN QUERY PLAN ${query}`)}`.execute(store.db);
      return r.rows.map((x) => x.detail).join('\n');
    }
    // An empty table is cheapest to scan; forbid the scan and the sort so the plan shows whether
    // an index can deliver this order at all.
    return store.transaction(async (trx) => {
      await sql`SET LOCAL enable_seqscan = off`.execute(trx);
      await sql`SET LOCAL enable_sort = off`.execute(trx);
      const r = await sql<{ 'QUERY PLAN': string }>`${sql.raw(`EXPLAIN ${query}`)}`.execute(trx);
      return r.rows.map((x) => x['QUERY PLAN']).join('\n');
    });
  }

  it.each([['the first page', PAGE], ['a page after a cursor', AFTER]])('GET /v1/operations: %s reads operations_tenant_created in order', async (_what, query) => {
    const p = await plan(query);
    expect(p).toContain('operations_tenant_created');
    if (dialect === 'sqlite') expect(p).not.toMatch(/TEMP B-TREE/);
    else expect(p).not.toMatch(/^\s*(->\s*)?Sort\b/m);
  });
});
