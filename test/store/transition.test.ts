import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventRepository } from '../../src/store/event-repository.js';
import type { Store } from '../../src/store/store.js';
import { transition } from '../../src/store/transition.js';
import { VolumeRepository } from '../../src/store/volume-repository.js';
import { DEFAULT_TENANT_ID } from '../../src/core/ids.js';
import { DIALECTS, openFreshStore, volumeRow } from './store-kit.js';

describe.each(DIALECTS)('transition() on %s', (dialect) => {
  const volumes = new VolumeRepository();
  const events = new EventRepository();
  let store: Store;
  let close: () => Promise<void>;

  beforeEach(async () => {
    const fresh = await openFreshStore(dialect);
    store = fresh.store;
    close = () => fresh.close();
  });
  afterEach(async () => {
    await close();
  });

  const eventsOf = async (id: string) => (await events.list(store.db, { tenantId: null, resourceId: id, limit: 100, after: 0 })).items.map((e) => `${e.action}:${e.fromState ?? ''}>${e.toState ?? ''}`);

  it('moves the row and records the event with the state it really was in', async () => {
    const v = volumeRow({ state: 'available' });
    await volumes.insert(store.db, v);
    const from = await store.transaction((trx) => transition(trx, 'volume', {
      id: v.id, tenantId: DEFAULT_TENANT_ID, to: 'deleting', patch: { state_reason: 'bye' }, event: { actor: 'test', action: 'delete', message: 'deleting', resourceName: v.name },
    }));
    expect(from).toBe('available');
    expect(await volumes.findById(store.db, v.id)).toMatchObject({ state: 'deleting', state_reason: 'bye' });
    expect(await eventsOf(v.id)).toEqual(['delete:available>deleting']);
  });

  it('throws INTERNAL on a move the table does not allow, and writes nothing', async () => {
    const v = volumeRow({ state: 'deleted' });
    await volumes.insert(store.db, v);
    await expect(store.transaction((trx) => transition(trx, 'volume', {
      id: v.id, tenantId: DEFAULT_TENANT_ID, to: 'available', event: { actor: 'test', action: 'undelete', message: 'no' },
    }))).rejects.toMatchObject({ code: 'INTERNAL', details: { resource: 'volume', from: 'deleted', to: 'available' } });
    expect((await volumes.findById(store.db, v.id))?.state).toBe('deleted');
    expect(await eventsOf(v.id)).toEqual([]);
  });

  it('runs inside the caller transaction: a later failure there rolls back the move and its event', async () => {
    const v = volumeRow({ state: 'available' });
    await volumes.insert(store.db, v);
    await expect(store.transaction(async (trx) => {
      await transition(trx, 'volume', { id: v.id, tenantId: DEFAULT_TENANT_ID, to: 'resizing', event: { actor: 'test', action: 'resize', message: 'growing' } });
      expect((await volumes.findById(trx, v.id))?.state).toBe('resizing');
      throw new Error('the claim did not fit');
    })).rejects.toThrow('the claim did not fit');
    expect((await volumes.findById(store.db, v.id))?.state).toBe('available');
    expect(await eventsOf(v.id)).toEqual([]);
  });

  it('with onlyFrom, leaves a row in any other state alone and says so with null', async () => {
    const v = volumeRow({ state: 'available' });
    await volumes.insert(store.db, v);
    const r = await store.transaction((trx) => transition(trx, 'volume', {
      id: v.id, tenantId: DEFAULT_TENANT_ID, to: 'error', onlyFrom: ['creating'], event: { actor: 'system', action: 'sweep', message: 'stale' },
    }));
    expect(r).toBeNull();
    expect((await volumes.findById(store.db, v.id))?.state).toBe('available');
    expect(await eventsOf(v.id)).toEqual([]);
  });

  it('files an event under another resource when asked (grant events live with their volume)', async () => {
    const v = volumeRow({ state: 'available' });
    await volumes.insert(store.db, v);
    await store.db.insertInto('hosts').values({
      id: 'host-aaaaaaaaaaaaaaaaaaaa', tenant_id: DEFAULT_TENANT_ID, name: 'h', initiator_name: null, addresses: '[]', zone: '', state: 'up',
      connectors: '[]', instances: '[]', agent_heartbeat_at: null, created_at: v.created_at, updated_at: v.created_at,
    }).execute();
    await store.db.insertInto('grants').values({
      id: 'gr-aaaaaaaaaaaaaaaaaaaa', tenant_id: DEFAULT_TENANT_ID, volume_id: v.id, host_id: 'host-aaaaaaaaaaaaaaaaaaaa', mode: 'rw', state: 'active',
      state_reason: null, chap_user: null, chap_secret_sealed: null, connection: null, created_at: v.created_at, updated_at: v.created_at,
    }).execute();
    await store.transaction((trx) => transition(trx, 'grant', {
      id: 'gr-aaaaaaaaaaaaaaaaaaaa', tenantId: DEFAULT_TENANT_ID, to: 'revoking',
      event: { actor: 'test', action: 'revoke', message: 'revoking', subject: { type: 'volume', id: v.id, name: v.name } },
    }));
    expect(await eventsOf(v.id)).toEqual(['revoke:active>revoking']);
    await expect(store.transaction((trx) => transition(trx, 'grant', {
      id: 'gr-aaaaaaaaaaaaaaaaaaaa', tenantId: DEFAULT_TENANT_ID, to: 'active', event: { actor: 'test', action: 'x', message: 'x' },
    }))).rejects.toMatchObject({ code: 'INTERNAL' });
  });
});
