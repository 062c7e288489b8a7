import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TENANT_ID, newId } from '../../src/core/ids.js';
import type { RetentionReport } from '../../src/core/schemas/retention-schema.js';
import { InjectClient, startInjectServer, type InjectServer } from '../helpers/inject.js';
import { pollUntil } from '../helpers/server.js';
import { makeTenantUser } from '../helpers/tenants.js';
import { isoIn, operationRow } from '../store/store-kit.js';

const DAY_MS = 86_400_000;

describe('retention over HTTP', () => {
  let s: InjectServer;
  beforeAll(async () => {
    s = await startInjectServer({ operationRetentionDays: 7, eventRetentionDays: 14 });
  });
  afterAll(async () => {
    await s.close();
  });

  it('shows the policy and what is kept, sweeps on demand, and answers the sweep in the report', async () => {
    // The server sweeps once at start; wait for that, so the sweep below is the one that prunes.
    await pollUntil('the start sweep', async () => (await s.api.ok<RetentionReport>('GET', '/v1/system/retention', 200)).lastSweep ?? undefined);
    const db = s.server.store.db;
    const old = isoIn(-30 * DAY_MS);
    const oldOp = operationRow({ state: 'failed', step: null, created_at: old, updated_at: old, finished_at: old });
    const liveOp = operationRow({ created_at: old, updated_at: old });
    await db.insertInto('operations').values([oldOp, liveOp]).execute();
    await db.insertInto('events').values({
      id: newId('event'), tenant_id: DEFAULT_TENANT_ID, at: old, actor: 'test', resource_type: 'volume', resource_id: 'vol-x',
      resource_name: null, action: 'step', from_state: null, to_state: null, message: 'old', details: '{}', operation_id: oldOp.id,
    }).execute();

    const before = await s.api.ok<RetentionReport>('GET', '/v1/system/retention', 200);
    expect(before.policy).toEqual({ operationRetentionDays: 7, eventRetentionDays: 14, archive: true, archiveDir: join(s.dataDir, 'archive') });
    expect(before.operations.oldestFinishedAt).toBe(old);
    expect(before.events.oldestAt).toBe(old);

    const swept = await s.api.ok<RetentionReport>('POST', '/v1/system/retention/sweep', 200);
    expect(swept.lastSweep).toMatchObject({ operationsPruned: 1, eventsPruned: 1, operationsArchived: 1, eventsArchived: 1, complete: true });
    expect(swept.operations.kept).toBe(before.operations.kept - 1);
    expect(swept.operations.oldestFinishedAt).not.toBe(old);
    expect(await db.selectFrom('operations').select('id').where('id', 'in', [oldOp.id, liveOp.id]).execute()).toEqual([{ id: liveOp.id }]);
    expect(readdirSync(join(s.dataDir, 'archive')).sort().map((f) => f.replace(/-.*/, ''))).toEqual(['events', 'operations']);
    expect(await s.api.ok<RetentionReport>('GET', '/v1/system/retention', 200)).toEqual(swept);

    const events = await s.api.ok<{ items: { action: string; actor: string }[] }>('GET', '/v1/events?type=system', 200);
    expect(events.items[0]).toMatchObject({ action: 'retention-swept', actor: 'system' });
  });

  it('is for admins only', async () => {
    for (const role of ['member', 'reader'] as const) {
      const u = await makeTenantUser(s.api, { tenant: 'rt-other', user: `rt-${role}`, role });
      const as = new InjectClient(s.server.app, u.token);
      for (const [method, path] of [['GET', '/v1/system/retention'], ['POST', '/v1/system/retention/sweep']] as const) {
        const r = await as.request(method, path);
        expect([r.status, (r.body as { code?: string }).code], `${role} ${method} ${path}`).toEqual([403, 'FORBIDDEN']);
      }
    }
  });
});
