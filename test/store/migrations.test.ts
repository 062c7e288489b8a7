import { describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/store.js';
import { MIGRATIONS } from '../../src/store/migrations/index.js';
import { DIALECTS, freshDatabase, volumeRow } from './store-kit.js';
import { DEFAULT_TENANT_ID } from '../../src/core/ids.js';
import { nowIso } from '../../src/store/json.js';

const TABLES = ['api_tokens', 'backends', 'events', 'operations', 'schema_migrations', 'tenants', 'volumes'];

interface MigrationRow { id: string; applied_at: string }

describe('store URLs', () => {
  it('rejects an unsupported database URL with VALIDATION_FAILED', async () => {
    await expect(openStore('mysql://x/y')).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  });
});

describe.each(DIALECTS)('migrations on %s', (dialect) => {
  it('applies every migration to an empty database and creates the tables', async () => {
    const fresh = await freshDatabase(dialect);
    const store = await openStore(fresh.url);
    try {
      expect(store.dialect).toBe(dialect);
      const tables = (await store.db.introspection.getTables()).map((t) => t.name).filter((n) => TABLES.includes(n)).sort();
      expect(tables).toEqual(TABLES);
      const applied = await store.db.selectFrom('schema_migrations' as 'tenants').selectAll().execute() as unknown as MigrationRow[];
      expect(applied.map((r) => r.id)).toEqual(MIGRATIONS.map((m) => m.id));
    } finally {
      await store.close();
      fresh.cleanup();
    }
  });

  it('re-applying is a no-op that keeps the data', async () => {
    const fresh = await freshDatabase(dialect);
    const first = await openStore(fresh.url);
    await first.db.insertInto('tenants').values({ id: DEFAULT_TENANT_ID, name: 'default', created_at: nowIso() }).execute();
    const vol = volumeRow({ name: 'survivor' });
    await first.db.insertInto('volumes').values(vol).execute();
    const before = await first.db.selectFrom('schema_migrations' as 'tenants').selectAll().execute() as unknown as MigrationRow[];
    await first.close();

    const second = await openStore(fresh.url);
    try {
      const after = await second.db.selectFrom('schema_migrations' as 'tenants').selectAll().execute() as unknown as MigrationRow[];
      expect(after).toEqual(before);
      const rows = await second.db.selectFrom('volumes').select(['id', 'name']).execute();
      expect(rows).toEqual([{ id: vol.id, name: 'survivor' }]);
    } finally {
      await second.close();
      fresh.cleanup();
    }
  });

  // Replicas share a store only on PostgreSQL (SQLite is one embedded process), so this is PostgreSQL's case.
  it.runIf(dialect === 'postgres')('replicas opening the same new database at once all succeed and migrate once', async () => {
    const fresh = await freshDatabase(dialect);
    const opened = await Promise.allSettled([openStore(fresh.url), openStore(fresh.url), openStore(fresh.url)]);
    const stores = opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    try {
      expect(opened.filter((r) => r.status === 'rejected')).toEqual([]);
      const applied = await stores[0]?.db.selectFrom('schema_migrations' as 'tenants').selectAll().execute() as unknown as MigrationRow[];
      expect(applied.map((r) => r.id)).toEqual(MIGRATIONS.map((m) => m.id));
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      fresh.cleanup();
    }
  });

});
