import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { DEFAULT_TENANT_ID } from '../../src/core/ids.js';
import { MIGRATIONS } from '../../src/store/migrations/index.js';
import { openStore } from '../../src/store/store.js';
import { DIALECTS, freshDatabase, type Dialect } from './store-kit.js';

/**
 * An old database upgraded to the latest schema keeps its data. For every schema version before the
 * latest (found from MIGRATIONS, so a new migration joins by being appended), the test migrates a
 * fresh database to exactly that version, writes one representative row into every table that exists
 * then (only the columns that exist then), opens it with openStore (which applies the rest), and
 * checks every row: old columns unchanged, columns added later at their upgrade value.
 */

type Row = Record<string, unknown>;
type AnyDb = Kysely<Record<string, Row>>;

const AT = '2026-01-02T03:04:05.000Z';
const LATER = '2026-01-02T03:05:00.000Z';
const T = DEFAULT_TENANT_ID;

/**
 * One row per table of the latest schema, in foreign-key order, with a value for every column.
 * Values differ from the column defaults on purpose, so a migration that overwrites data shows.
 * A new table or column needs a row or value here: the first test says which are missing.
 */
const FIXTURE: readonly (readonly [table: string, row: Row])[] = [
  ['tenants', { id: T, name: 'default', created_at: AT, description: 'the first', updated_at: LATER, deleting_at: LATER }],
  ['users', { id: 'usr_1', tenant_id: T, name: 'alice', role: 'member', kind: 'user', description: 'a member', created_at: AT, updated_at: LATER }],
  ['api_tokens', {
    id: 'tok_1', tenant_id: T, name: 'admin', token_hash: 'sha256:abc', role: 'admin', created_at: AT, last_used_at: LATER, host_id: 'host_1',
    user_id: 'usr_1', expires_at: LATER, revoked_at: LATER, scope: 'reader',
  }],
  ['nodes', {
    id: 'node_1', name: 'sn1', address: '10.99.0.221:8751', state: 'ready', state_reason: 'synced', admin_state: 'draining', version: '0.1.0',
    boot_id: 'boot-1', epoch: 4, cert_pem: 'PEM', cert_fingerprint: 'sha256:ff', cert_expires_at: LATER, enroll_token_hash: 'h1',
    enroll_expires_at: LATER, last_heartbeat_at: LATER, clock_skew_ms: -12, unreachable_since: AT, created_at: AT, updated_at: LATER,
  }],
  ['control_identities', { name: 'node-client', cert_pem: 'PEM', key_sealed: 'v1:sealed', created_at: AT }],
  ['backends', {
    id: 'bk_1', tenant_id: T, name: 'fast', driver_uri: 'dir:///srv/fast', kind: 'block', role: 'primary', state: 'enabled',
    state_reason: 'probed', admin_state: 'enabled', cost: 3, tags: '["ssd"]', zone: 'z1', overcommit_ratio: 1.5, reserved_percent: 10,
    options: '{"a":1}', capabilities_reported: '["snapshot"]', capabilities_overrides: '{"add":["clone"],"remove":[]}',
    total_bytes: 10_000_000_000, free_bytes: 6_000_000_000, used_bytes: 4_000_000_000, last_probe_at: LATER, created_at: AT, updated_at: LATER,
    node_id: 'node_1', tenants: '["tn_other"]',
  }],
  ['classes', {
    id: 'cls_1', name: 'gold', description: 'fast disks', kind: 'block', zone: 'z1', required_tags: '["ssd"]', forbidden_tags: '[]',
    required_capabilities: '["snapshot"]', policy: 'pack', is_default: 1, offload: 0, created_at: AT, updated_at: LATER, tenants: null,
  }],
  ['volumes', {
    id: 'vol_1', tenant_id: T, name: 'db1', backend_id: 'bk_1', state: 'available', state_reason: null, size_bytes: 5_000_000_000,
    format: 'raw', driver_handle: '{"path":"/srv/fast/db1"}', placement: '{"filters":[]}', created_at: AT, updated_at: LATER, deleted_at: null,
    class_id: 'cls_1', multiattach: 1,
  }],
  ['operations', {
    id: 'op_1', tenant_id: T, kind: 'volume.create', target_type: 'volume', target_id: 'vol_1', state: 'succeeded', step: null,
    steps_done: '["claim","provision"]', attempts: 2, input: '{"name":"db1"}', result: '{"ok":true}', error: null, actor: 'admin',
    idempotency_key: 'idem-1', progress: 1, lease_owner: null, lease_expires_at: null, created_at: AT, updated_at: LATER, finished_at: LATER,
    lease_epoch: 3, not_before: LATER, waiting_reason: 'waiting for node sn1',
  }],
  ['events', {
    seq: 7, id: 'evt_1', tenant_id: T, at: AT, actor: 'admin', resource_type: 'volume', resource_id: 'vol_1', resource_name: 'db1',
    action: 'volume.created', from_state: 'creating', to_state: 'available', message: 'created', details: '{"size":5}', operation_id: 'op_1',
  }],
  ['claims', {
    id: 'clm_1', backend_id: 'bk_1', resource_type: 'volume', resource_id: 'vol_1', operation_id: 'op_1', bytes: 5_000_000_000,
    state: 'committed', expires_at: LATER, created_at: AT,
  }],
  ['hosts', {
    id: 'host_1', tenant_id: T, name: 'h1', initiator_name: 'iqn.2026-01.test:h1', addresses: '["10.99.0.2"]', zone: 'z1', state: 'up',
    connectors: '["iscsi"]', instances: '["vm1"]', agent_heartbeat_at: LATER, created_at: AT, updated_at: LATER,
    enroll_token_hash: 'h2', enroll_expires_at: LATER, tenants: '[]',
  }],
  ['grants', {
    id: 'grt_1', tenant_id: T, volume_id: 'vol_1', host_id: 'host_1', mode: 'rw', state: 'active', state_reason: null, chap_user: 'u1',
    chap_secret_sealed: 'v1:aXY=:dGFn:ZGF0YQ==', connection: '{"portal":"10.99.0.1:3260"}', created_at: AT, updated_at: LATER,
  }],
  ['snapshots', {
    id: 'snap_1', tenant_id: T, name: 's1', volume_id: 'vol_1', backend_id: 'bk_1', state: 'available', state_reason: null,
    size_bytes: 5_000_000_000, driver_handle: '{"path":"/srv/fast/s1"}', method: 'reflink', created_at: AT, updated_at: LATER, deleted_at: null,
  }],
  ['migrations', {
    id: 'mig_1', tenant_id: T, instance: 'vm1', from_host_id: 'host_1', to_host_id: 'host_1', state: 'completed', state_reason: null,
    created_at: AT, updated_at: LATER,
  }],
  ['attachments', {
    id: 'att_1', tenant_id: T, volume_id: 'vol_1', host_id: 'host_1', instance: 'vm1', mode: 'rw', state: 'attached', state_reason: null,
    grant_id: 'grt_1', device_id: 'virtio-1', migration_id: 'mig_1', reported_at: LATER, created_at: AT, updated_at: LATER,
  }],
  ['idempotency_keys', {
    tenant_id: T, key: 'idem-2', fingerprint: 'sha256:def', status_code: 202, response: '{"operation":{"id":"op_1"}}', created_at: AT,
    claim_expires_at: LATER,
  }],
  ['quotas', { tenant_id: T, class_id: 'cls_1', max_volumes: 10, max_bytes: 50_000_000_000, max_snapshots: null, updated_at: AT }],
  ['retention_sweeps', { id: 'last', at: LATER, operations_pruned: 3, events_pruned: 40, operations_archived: 3, events_archived: 40, complete: 1 }],
];

/**
 * What a column added by a later migration holds in a row written before it: its declared default.
 * A nullable column not listed here must come back null; a NOT NULL one must be listed.
 */
const UPGRADE_VALUES: Readonly<Record<string, unknown>> = {
  'volumes.class_id': null,
  'volumes.multiattach': 0,
  'classes.offload': 1,
  'operations.lease_epoch': 0,
  'tenants.description': '',
};

/** Opens the database behind `url` without migrating it. */
function openRaw(dialect: Dialect, url: string): AnyDb {
  if (dialect === 'postgres') return new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }) });
  const raw = new SqliteDatabase(url.slice('sqlite://'.length));
  raw.pragma('journal_mode = WAL');
  raw.pragma('foreign_keys = ON');
  return new Kysely({ dialect: new SqliteDialect({ database: raw }) });
}

/** Brings an empty database to exactly the first `count` migrations, recorded as the store records them. */
async function migrateTo(db: AnyDb, dialect: Dialect, count: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.schema.createTable('schema_migrations')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('applied_at', 'text', (c) => c.notNull())
      .execute();
    for (const m of MIGRATIONS.slice(0, count)) {
      await m.up(trx as unknown as Kysely<unknown>, dialect);
      await trx.insertInto('schema_migrations').values({ id: m.id, applied_at: AT }).execute();
    }
  });
}

/** Tables whose rows the migrations write themselves (placement_catalog's one version row): no fixture row. */
const SEEDED_BY_MIGRATIONS: ReadonlySet<string> = new Set(['schema_migrations', 'placement_catalog']);

/** Table name → its column names → nullable, as the database describes itself now (the seeded tables left out). */
async function describeSchema(db: AnyDb): Promise<Map<string, Map<string, boolean>>> {
  const tables = await db.introspection.getTables();
  return new Map(tables.filter((t) => !SEEDED_BY_MIGRATIONS.has(t.name))
    .map((t) => [t.name, new Map(t.columns.map((c) => [c.name, c.isNullable]))]));
}

/** `row` restricted to the columns in `columns`. */
function pick(row: Row, columns: ReadonlyMap<string, boolean>): Row {
  return Object.fromEntries(Object.entries(row).filter(([k]) => columns.has(k)));
}

describe.each(DIALECTS)('upgrading a populated database on %s', (dialect) => {
  it('the fixture covers every table and column of the latest schema', async () => {
    const fresh = await freshDatabase(dialect);
    const store = await openStore(fresh.url);
    try {
      const latest = await describeSchema(store.db as unknown as AnyDb);
      const fixture = new Map(FIXTURE.map(([t, r]) => [t, r]));
      const missing: string[] = [];
      for (const [table, columns] of latest) {
        const row = fixture.get(table);
        if (row === undefined) { missing.push(`${table} (no row)`); continue; }
        for (const c of columns.keys()) if (!(c in row)) missing.push(`${table}.${c}`);
      }
      expect(missing, 'add these to FIXTURE in migration-upgrade.test.ts').toEqual([]);
    } finally {
      await store.close();
      fresh.cleanup();
    }
  });

  // Every version that has a later one to upgrade to; a new migration adds a case by being appended.
  const versions = MIGRATIONS.slice(0, -1).map((m, i) => ({ id: m.id, count: i + 1 }));
  it('there is at least one earlier version to upgrade from', () => {
    expect(versions.length).toBeGreaterThan(0);
  });

  it.each(versions)('from $id to the latest keeps every row', async ({ count }) => {
    const fresh = await freshDatabase(dialect);
    const old = openRaw(dialect, fresh.url);
    let then: Map<string, Map<string, boolean>>;
    const written: string[] = [];
    try {
      await migrateTo(old, dialect, count);
      then = await describeSchema(old);
      for (const [table, row] of FIXTURE) {
        const columns = then.get(table);
        if (columns === undefined) continue;
        await old.insertInto(table).values(pick(row, columns)).execute();
        written.push(table);
      }
      // Every version has something to carry over, or the case proves nothing.
      expect(written.length).toBeGreaterThan(0);
    } finally {
      await old.destroy();
    }

    const store = await openStore(fresh.url);
    try {
      const db = store.db as unknown as AnyDb;
      const applied = await db.selectFrom('schema_migrations').select('id').orderBy('id').execute();
      expect(applied.map((r) => r.id)).toEqual(MIGRATIONS.map((m) => m.id));
      const latest = await describeSchema(db);
      for (const [table, row] of FIXTURE) {
        const before = then.get(table);
        if (before === undefined) continue;
        const rows = await db.selectFrom(table).selectAll().execute();
        expect(rows, `${table} after the upgrade`).toHaveLength(1);
        const expected: Row = {};
        for (const [column, nullable] of latest.get(table) ?? new Map<string, boolean>()) {
          const key = `${table}.${column}`;
          if (before.has(column)) expected[column] = row[column];
          else if (key in UPGRADE_VALUES) expected[column] = UPGRADE_VALUES[key];
          else if (nullable) expected[column] = null;
          else throw new Error(`${key} is NOT NULL and was added after ${MIGRATIONS[count - 1]?.id ?? '?'}: add its value for old rows to UPGRADE_VALUES`);
        }
        expect(rows[0], `${table} after the upgrade`).toEqual(expected);
      }
    } finally {
      await store.close();
      fresh.cleanup();
    }
  });
});
