import { join } from 'node:path';
import { DEFAULT_TENANT_ID, newId } from '../../src/core/ids.js';
import { nowIso } from '../../src/store/json.js';
import type { BackendRow, NewVolumeRow, OperationRow } from '../../src/store/schema.js';
import { openStore, type Store } from '../../src/store/store.js';
import { makeTempDir, removeTempDir } from '../helpers/server.js';
import { freshPostgresUrl } from '../helpers/pg.js';

/** Every store dialect; each store test runs once per entry. */
export const DIALECTS = ['sqlite', 'postgres'] as const;

/** A store dialect under test. */
export type Dialect = (typeof DIALECTS)[number];

/** A fresh, empty database of `dialect`: its URL and how to drop the local files afterwards. */
export interface FreshDatabase {
  readonly url: string;
  cleanup(): void;
}

/** Creates an empty database: a SQLite file in a temp dir, or a new PostgreSQL database. */
export async function freshDatabase(dialect: Dialect): Promise<FreshDatabase> {
  if (dialect === 'postgres') return { url: await freshPostgresUrl('store'), cleanup: () => undefined };
  const dir = makeTempDir('stowage-store-');
  return { url: `sqlite://${join(dir, 'stowage.db')}`, cleanup: () => { removeTempDir(dir); } };
}

/** Opens (and migrates) a fresh store of `dialect` with the default tenant in it. */
export async function openFreshStore(dialect: Dialect): Promise<{ store: Store; url: string; close: () => Promise<void> }> {
  const db = await freshDatabase(dialect);
  const store = await openStore(db.url);
  await store.db.insertInto('tenants').values({ id: DEFAULT_TENANT_ID, name: 'default', created_at: nowIso() }).execute();
  return {
    store,
    url: db.url,
    close: async () => {
      await store.close();
      db.cleanup();
    },
  };
}

/** A backend row with sensible defaults. */
export function backendRow(patch: Partial<BackendRow> = {}): BackendRow {
  const at = nowIso();
  return {
    id: newId('backend'), tenant_id: DEFAULT_TENANT_ID, name: `b-${newId('backend').slice(3, 11)}`, driver_uri: 'dir:///srv/x', kind: 'block',
    role: 'primary', state: 'enabled', state_reason: null, admin_state: 'enabled', cost: 1, tags: '[]', zone: '',
    overcommit_ratio: 1, reserved_percent: 0, options: '{}', capabilities_reported: '[]', capabilities_overrides: '{"add":[],"remove":[]}',
    total_bytes: 1 << 30, free_bytes: 1 << 30, used_bytes: 0, last_probe_at: null, created_at: at, updated_at: at, node_id: null, tenants: null,
    ...patch,
  };
}

/** A volume row with sensible defaults. */
export function volumeRow(patch: Partial<NewVolumeRow> = {}): NewVolumeRow {
  const at = nowIso();
  return {
    id: newId('volume'), tenant_id: DEFAULT_TENANT_ID, name: `v-${newId('volume').slice(4, 12)}`, backend_id: null, state: 'available',
    state_reason: null, size_bytes: 1024, format: 'raw', driver_handle: null, placement: null, created_at: at, updated_at: at, deleted_at: null,
    ...patch,
  };
}

/** A queued operation row with sensible defaults. */
export function operationRow(patch: Partial<OperationRow> = {}): OperationRow {
  const at = nowIso();
  return {
    id: newId('operation'), tenant_id: DEFAULT_TENANT_ID, kind: 'volume.create', target_type: 'volume', target_id: newId('volume'),
    state: 'queued', step: 'provision', steps_done: '[]', attempts: 0, input: '{}', result: null, error: null, actor: 'test',
    idempotency_key: null, progress: null, lease_owner: null, lease_expires_at: null, lease_epoch: 0, not_before: null, waiting_reason: null, created_at: at, updated_at: at, finished_at: null,
    ...patch,
  };
}

/** ISO time `deltaMs` from now. */
export function isoIn(deltaMs: number): string {
  return new Date(Date.now() + deltaMs).toISOString();
}
