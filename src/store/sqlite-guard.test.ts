import { describe, expect, it } from 'vitest';
import { DEFAULT_TENANT_ID } from '../core/ids.js';
import { openStore } from './store.js';
import { TenantRepository } from './tenant-repository.js';

describe('GuardedSqliteDialect', () => {
  it('turns a query on the root handle inside a transaction into an error instead of a hang, and stays usable', async () => {
    const store = await openStore('sqlite::memory:', { sqliteAcquireTimeoutMs: 300 });
    try {
      const wedge = store.transaction(async (trx) => {
        await new TenantRepository().ensureDefaultTenant(trx);
        // The bug the guard exists for: the root handle instead of `trx`.
        return store.db.selectFrom('tenants').selectAll().execute();
      });
      await expect(wedge).rejects.toThrow(/stayed busy for 300 ms/);
      // The transaction rolled back and the connection was given back: the store still works.
      const rows = await store.db.selectFrom('tenants').select('id').execute();
      expect(rows).toEqual([]);
      await new TenantRepository().ensureDefaultTenant(store.db);
      expect((await store.db.selectFrom('tenants').select('id').execute()).map((r) => r.id)).toEqual([DEFAULT_TENANT_ID]);
    } finally {
      await store.close();
    }
  });
});
