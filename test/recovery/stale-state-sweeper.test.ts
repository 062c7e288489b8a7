import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { StowageEvent } from '../../src/core/schemas/event-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { DEFAULT_TENANT_ID, idOf, newId } from '../../src/core/ids.js';
import type { VolumeState } from '../../src/core/states.js';
import { StaleStateSweeper } from '../../src/reconcile/stale-state-sweeper.js';
import { nowIso } from '../../src/store/json.js';
import { createRepositories } from '../../src/store/repositories.js';
import { freshPostgresUrl } from '../helpers/pg.js';
import { pollUntil } from '../helpers/server.js';
import { InjectClient, startInjectServer, type InjectServer } from '../helpers/inject.js';
import { makeTenantUser } from '../helpers/tenants.js';

const MiB = 1024 ** 2;
const TRANSITIONAL = ['creating', 'resizing', 'reverting', 'deleting'] as const;
interface Page<T> { items: T[] }

/**
 * The net behind "no resource stays in a transitional state": a volume left creating, resizing,
 * reverting or deleting with no unfinished operation in charge (a bug, or a hand edit of the store)
 * is settled to `error` with the reason and an event, while one an operation still owns is left to
 * that operation. Run on the real composition (startServer) on both stores.
 */
describe.each(['sqlite', 'postgres'] as const)('stale-state sweeper on %s', (dialect) => {
  let s: InjectServer | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  const start = async (reconcileIntervalMs: number): Promise<InjectServer> => {
    s = await startInjectServer({ reconcileIntervalMs, ...(dialect === 'postgres' ? { databaseUrl: await freshPostgresUrl('sweeper') } : {}) });
    return s;
  };
  const create = async (srv: InjectServer, name: string): Promise<Volume> =>
    (await srv.api.ok<{ volume: Volume }>('POST', '/v1/volumes?wait=true', 200, { body: { name, sizeBytes: MiB } })).volume;
  /** A hand edit of the store, exactly what the sweeper exists for. */
  const leaveIn = async (srv: InjectServer, id: string, state: VolumeState): Promise<void> => {
    await srv.server.store.db.updateTable('volumes').set({ state, updated_at: nowIso() }).where('id', '=', idOf('volume', id)).execute();
  };

  it('settles every transitional state without an operation to error (once), and leaves one an operation owns alone', async () => {
    // The periodic sweep is pushed out of the way (1 h) so this test's sweep() is the one that acts.
    const srv = await start(3_600_000);
    const db = srv.server.store.db;
    const orphans = new Map<string, Volume>();
    for (const state of TRANSITIONAL) {
      const v = await create(srv, `orphan-${state}`);
      await leaveIn(srv, v.id, state);
      orphans.set(state, v);
    }
    // Owned: another replica holds a running delete with a live lease (this server will not claim it).
    const owned = await create(srv, 'owned');
    await leaveIn(srv, owned.id, 'deleting');
    const at = nowIso();
    const opId = newId('operation');
    const { tenant_id } = await db.selectFrom('volumes').select('tenant_id').where('id', '=', owned.id).executeTakeFirstOrThrow();
    await db.insertInto('operations').values({
      id: opId, tenant_id, kind: 'volume.delete', target_type: 'volume', target_id: owned.id, state: 'running', step: 'destroy',
      steps_done: '[]', attempts: 1, input: '{}', result: null, error: null, actor: 'admin', idempotency_key: null, progress: null,
      lease_owner: 'another-replica', lease_expires_at: new Date(Date.now() + 3_600_000).toISOString(), created_at: at, updated_at: at, finished_at: null,
    }).execute();

    const sweeper = new StaleStateSweeper(srv.server.store, createRepositories(), pino({ level: 'silent' }));
    expect(await sweeper.sweep()).toBe(TRANSITIONAL.length);
    for (const [state, v] of orphans) {
      const now = await srv.api.ok<Volume>('GET', `/v1/volumes/${v.id}`, 200);
      expect(now.state, state).toBe('error');
      expect(now.stateReason).toBe(`was ${state} with no operation in charge; check the backend and delete or retry`);
      const events = await srv.api.ok<Page<StowageEvent>>('GET', `/v1/events?resource=${v.id}&after=0&limit=100`, 200);
      expect(events.items.filter((e) => e.action === 'sweep').map((e) => `${e.fromState ?? ''}>${e.toState ?? ''}:${e.actor}`)).toEqual([`${state}>error:system`]);
    }
    expect((await srv.api.ok<Volume>('GET', `/v1/volumes/${owned.id}`, 200)).state).toBe('deleting');

    // Idempotent: nothing left to settle, and no second event.
    expect(await sweeper.sweep()).toBe(0);
    const again = await srv.api.ok<Page<StowageEvent>>('GET', `/v1/events?resource=${orphans.get('creating')?.id ?? ''}&after=0&limit=100`, 200);
    expect(again.items.filter((e) => e.action === 'sweep')).toHaveLength(1);

    // Once the owner's operation is gone for good, the sweeper settles that one too.
    await db.updateTable('operations').set({ state: 'failed', finished_at: nowIso(), lease_owner: null, lease_expires_at: null }).where('id', '=', opId).execute();
    expect(await sweeper.sweep()).toBe(1);
    expect((await srv.api.ok<Volume>('GET', `/v1/volumes/${owned.id}`, 200)).state).toBe('error');

    // A settled volume is usable again: delete works and removes its file.
    for (const v of orphans.values()) {
      const r = await srv.api.ok<{ volume: Volume }>('DELETE', `/v1/volumes/${v.id}?wait=true`, 200);
      expect(r.volume.state).toBe('deleted');
    }
  });

  it('leaves the volumes of a tenant to the cascading delete that runs on it', async () => {
    const srv = await start(3_600_000);
    const member = await makeTenantUser(srv.api, { tenant: 'sweep-doomed', user: 'sweep-dana', role: 'member' });
    const v = await create({ ...srv, api: new InjectClient(srv.server.app, member.token) }, 'doomed-vol');
    await leaveIn(srv, v.id, 'deleting');
    const tenant = await srv.api.ok<{ id: string }>('GET', '/v1/tenants/sweep-doomed', 200);
    // Another replica runs the tenant's delete (filed under the default tenant, targeting the tenant).
    const at = nowIso();
    const opId = newId('operation');
    await srv.server.store.db.insertInto('operations').values({
      id: opId, tenant_id: DEFAULT_TENANT_ID, kind: 'tenant.delete', target_type: 'tenant', target_id: tenant.id, state: 'running', step: 'volumes',
      steps_done: '[]', attempts: 1, input: '{"name":"sweep-doomed"}', result: null, error: null, actor: 'admin', idempotency_key: null, progress: null,
      lease_owner: 'another-replica', lease_expires_at: new Date(Date.now() + 3_600_000).toISOString(), created_at: at, updated_at: at, finished_at: null,
    }).execute();
    const sweeper = new StaleStateSweeper(srv.server.store, createRepositories(), pino({ level: 'silent' }));
    expect(await sweeper.sweep()).toBe(0);
    await srv.server.store.db.updateTable('operations').set({ state: 'failed', finished_at: nowIso(), lease_owner: null, lease_expires_at: null }).where('id', '=', opId).execute();
    expect(await sweeper.sweep()).toBe(1);
  });

  it('runs periodically inside the server', async () => {
    // Shortened (200 ms vs the 30 s default) only so the periodic pass comes within the test.
    const srv = await start(200);
    const v = await create(srv, 'left-reverting');
    await leaveIn(srv, v.id, 'reverting');
    const settled = await pollUntil('the periodic sweep to settle the volume', async () => {
      const now = await srv.api.ok<Volume>('GET', `/v1/volumes/${v.id}`, 200);
      return now.state === 'error' ? now : undefined;
    });
    expect(settled.stateReason).toMatch(/^was reverting with no operation in charge/);
  });
});
