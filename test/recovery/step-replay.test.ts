import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import type { StowageEvent } from '../../src/core/schemas/event-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { openStore } from '../../src/store/store.js';
import { clientFor, ensureBuilt, killAllSpawned, pollUntil, spawnServer, type ApiClient } from '../helpers/server.js';
import { cleanupRuns, newRun, type Run } from './recovery-kit.js';

const MiB = 1024 ** 2;

interface Submitted { volume: Volume; operation: Operation }
interface Page<T> { items: T[]; nextCursor: string | null }

/** One finished operation whose journal is rewound as if its worker died before recording `recorded`. */
interface Replay {
  readonly volume: string;
  readonly kind: string;
  /** Steps left recorded as done; the rest re-run although their effects already happened. */
  readonly recorded: readonly string[];
  readonly firstUnrecorded: string;
}

const REPLAYS: readonly Replay[] = [
  { volume: 'created-none', kind: 'volume.create', recorded: [], firstUnrecorded: 'provision' },
  { volume: 'created-half', kind: 'volume.create', recorded: ['provision'], firstUnrecorded: 'activate' },
  { volume: 'resized-none', kind: 'volume.resize', recorded: [], firstUnrecorded: 'grow' },
  { volume: 'resized-half', kind: 'volume.resize', recorded: ['grow'], firstUnrecorded: 'activate' },
  { volume: 'deleted-none', kind: 'volume.delete', recorded: [], firstUnrecorded: 'destroy' },
  { volume: 'deleted-half', kind: 'volume.delete', recorded: ['destroy'], firstUnrecorded: 'finalize' },
];

function storeUrl(run: Run): string {
  return run.databaseUrl ?? `sqlite://${join(run.dataDir, 'stowage.db')}`;
}

async function eventsOf(api: ApiClient, id: string): Promise<string[]> {
  const page = await api.ok<Page<StowageEvent>>('GET', `/v1/events?resource=${id}&after=0&limit=1000`, 200);
  return page.items.map((e) => `${e.action}:${e.fromState ?? 'null'}>${e.toState ?? 'null'}`);
}

// Failpoints fire before a step or after it is recorded; the window in between (the step's effect
// happened, the journal does not say so) is reached here by rewinding finished journals, as a worker
// killed inside that window would leave them. Every step must be safe to run twice.
describe.each(['sqlite', 'postgres'] as const)('replaying steps whose effects already happened, on %s', (dialect) => {
  beforeAll(async () => {
    await ensureBuilt();
  });
  afterEach(async () => {
    await killAllSpawned();
    cleanupRuns();
  });

  it('re-runs unrecorded steps without duplicating effects or transitions', async () => {
    const run = await newRun(dialect);
    const base = { dataDir: run.dataDir, ...(run.databaseUrl !== undefined ? { databaseUrl: run.databaseUrl } : {}) };
    const s1 = await spawnServer(base);
    const api1 = clientFor(s1);
    const ids = new Map<string, string>();
    for (const r of REPLAYS) {
      const v = (await api1.ok<Submitted>('POST', '/v1/volumes?wait=true', 200, { body: { name: r.volume, sizeBytes: MiB } })).volume;
      ids.set(r.volume, v.id);
      if (r.kind === 'volume.resize') await api1.ok('POST', `/v1/volumes/${v.id}/resize?wait=true`, 200, { body: { sizeBytes: 2 * MiB } });
      if (r.kind === 'volume.delete') await api1.ok('DELETE', `/v1/volumes/${v.id}?wait=true`, 200);
    }
    const before = new Map<string, { volume: Volume; events: string[] }>();
    for (const [name, id] of ids) before.set(name, { volume: await api1.ok<Volume>('GET', `/v1/volumes/${id}`, 200), events: await eventsOf(api1, id) });
    expect(await s1.stop()).toEqual({ code: 0, signal: null });

    // Rewind: the latest operation of each volume is `running` under a dead worker's expired lease.
    const store = await openStore(storeUrl(run));
    const opIds = new Map<string, string>();
    try {
      for (const r of REPLAYS) {
        const op = await store.db.selectFrom('operations').selectAll().where('target_id', '=', ids.get(r.volume) ?? '')
          .where('kind', '=', r.kind).executeTakeFirstOrThrow();
        const done = (JSON.parse(op.steps_done) as { name: string }[]).filter((s) => r.recorded.includes(s.name));
        expect(done.map((s) => s.name)).toEqual(r.recorded);
        await store.db.updateTable('operations').set({
          state: 'running', step: r.firstUnrecorded, steps_done: JSON.stringify(done), result: null, finished_at: null,
          lease_owner: 'dead-worker', lease_expires_at: new Date(Date.now() - 60_000).toISOString(),
        }).where('id', '=', op.id).execute();
        opIds.set(r.volume, op.id);
      }
    } finally {
      await store.close();
    }

    const s2 = await spawnServer(base);
    const api2 = clientFor(s2);
    for (const r of REPLAYS) {
      const op = await pollUntil(`${r.kind} of ${r.volume} to finish again`, async () => {
        const o = await api2.ok<Operation>('GET', `/v1/operations/${opIds.get(r.volume) ?? ''}`, 200);
        return o.state === 'succeeded' || o.state === 'failed' ? o : undefined;
      });
      expect(op.state, `${r.volume}: ${JSON.stringify(op.error)}`).toBe('succeeded');
      const id = ids.get(r.volume) ?? '';
      const was = before.get(r.volume);
      const now = await api2.ok<Volume>('GET', `/v1/volumes/${id}`, 200);
      expect({ state: now.state, sizeBytes: now.sizeBytes, backendId: now.backendId }, r.volume)
        .toEqual({ state: was?.volume.state, sizeBytes: was?.volume.sizeBytes, backendId: was?.volume.backendId });
      expect(await eventsOf(api2, id), `${r.volume} events`).toEqual(was?.events);
      const file = join(run.localDir, `${id}.raw`);
      if (r.kind === 'volume.delete') expect(existsSync(file), `${r.volume} file`).toBe(false);
      else expect(statSync(file).size, `${r.volume} file`).toBe(now.sizeBytes);
    }
    expect(await s2.stop()).toEqual({ code: 0, signal: null });
  });
});
