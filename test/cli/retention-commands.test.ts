import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TENANT_ID, newId } from '../../src/core/ids.js';
import type { RetentionReport } from '../../src/core/schemas/retention-schema.js';
import { pollUntil } from '../helpers/server.js';
import { isoIn, operationRow } from '../store/store-kit.js';
import { CliSession } from './cli-harness.js';

const DAY_MS = 86_400_000;

/** `stowage retention show|sweep`, run as the built CLI against a real server: a table for people, `-o json` for scripts. */
describe('stowage retention commands', () => {
  let s: CliSession;
  const ok = async (args: readonly string[]): Promise<string> => {
    const r = await s.run(args);
    expect(r.code, `stowage ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const json = async <T>(args: readonly string[]): Promise<T> => JSON.parse(await ok([...args, '-o', 'json'])) as T;

  beforeAll(async () => { s = await CliSession.start({ operationRetentionDays: 7, eventRetentionDays: 0 }); }, 120_000);
  afterAll(async () => { await s.stop(); });

  it('shows the policy and sweeps old finished operations, as a table and as JSON', async () => {
    // Let the sweep the server runs at start end first, so the one below is the one that prunes.
    await pollUntil('the start sweep', async () => (await json<RetentionReport>(['retention', 'show'])).lastSweep ?? undefined);
    const old = isoIn(-30 * DAY_MS);
    await s.server.store.db.insertInto('operations').values(operationRow({ state: 'succeeded', step: null, created_at: old, updated_at: old, finished_at: old })).execute();
    await s.server.store.db.insertInto('events').values({
      id: newId('event'), tenant_id: DEFAULT_TENANT_ID, at: old, actor: 'test', resource_type: 'volume', resource_id: 'vol-x',
      resource_name: null, action: 'step', from_state: null, to_state: null, message: 'old', details: '{}', operation_id: null,
    }).execute();

    const shown = await ok(['retention', 'show']);
    const [head = '', ops = '', events = ''] = shown.split('\n');
    expect(head.split(/\s{2,}/)).toEqual(['ROWS', 'KEPT FOR', 'KEPT', 'OLDEST KEPT', 'PRUNED LAST SWEEP', 'ARCHIVED LAST SWEEP']);
    expect(ops).toMatch(/^operations \(finished\)\s+7 days\s+\d+\s+\d{4}-/);
    expect(events).toMatch(/^events\s+forever\s+/);
    expect(shown).toMatch(/^archive: .*\/archive$/m);

    const swept = await json<RetentionReport>(['retention', 'sweep']);
    expect(swept.lastSweep).toMatchObject({ operationsPruned: 1, operationsArchived: 1, eventsPruned: 0, complete: true });
    expect(swept.policy).toMatchObject({ operationRetentionDays: 7, eventRetentionDays: 0, archive: true });
    expect(await ok(['retention', 'sweep'])).toMatch(/^last sweep: \d{4}-/m);
    expect((await ok(['retention', '--help']))).toContain('sweep');
  });
});
