import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_TENANT_ID, newId } from '../../src/core/ids.js';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import type { StowageEvent } from '../../src/core/schemas/event-schema.js';
import { RetentionSweeper, type RetentionPolicy } from '../../src/reconcile/retention-sweeper.js';
import { createRepositories } from '../../src/store/repositories.js';
import type { Store } from '../../src/store/store.js';
import { makeTempDir, removeTempDir } from '../helpers/server.js';
import { withUmask } from '../helpers/file-modes.js';
import { DIALECTS, isoIn, openFreshStore, operationRow } from './store-kit.js';

const DAY_MS = 86_400_000;
const repos = createRepositories();
const silent = pino({ level: 'silent' });

describe.each(DIALECTS)('retention sweeps on %s', (dialect) => {
  let store: Store;
  let close: () => Promise<void>;
  let dataDir: string;

  beforeEach(async () => {
    ({ store, close } = await openFreshStore(dialect));
    dataDir = makeTempDir('stowage-retention-');
  });
  afterEach(async () => {
    await close();
    removeTempDir(dataDir);
  });

  const archiveDir = (): string => join(dataDir, 'archive');
  const policy = (patch: Partial<RetentionPolicy> = {}): RetentionPolicy => ({ operationRetentionDays: 30, eventRetentionDays: 90, archive: true, archiveDir: archiveDir(), ...patch });
  const sweeper = (p: RetentionPolicy, batchRows?: number): RetentionSweeper => new RetentionSweeper(store, repos, p, silent, batchRows);

  /** A finished operation that finished `ageDays` ago. */
  async function finishedOp(ageDays: number, state: 'succeeded' | 'failed' = 'succeeded'): Promise<string> {
    const at = isoIn(-ageDays * DAY_MS);
    const row = operationRow({ state, step: null, created_at: at, updated_at: at, finished_at: at });
    await repos.operations.insert(store.db, row);
    return row.id;
  }

  async function eventAt(ageDays: number, message: string): Promise<void> {
    await store.db.insertInto('events').values({
      id: newId('event'), tenant_id: DEFAULT_TENANT_ID, at: isoIn(-ageDays * DAY_MS), actor: 'test', resource_type: 'volume', resource_id: 'vol-x',
      resource_name: null, action: 'step', from_state: null, to_state: null, message, details: '{}', operation_id: null,
    }).execute();
  }

  async function operationIds(): Promise<string[]> {
    return (await store.db.selectFrom('operations').select('id').orderBy('id').execute()).map((r) => r.id);
  }

  async function eventMessages(): Promise<string[]> {
    return (await store.db.selectFrom('events').select('message').where('action', '=', 'step').orderBy('message').execute()).map((r) => r.message);
  }

  /** Every archived line of files whose name starts with `prefix`, parsed. */
  function archived<T>(prefix: string): T[] {
    if (!existsSync(archiveDir())) return [];
    return readdirSync(archiveDir()).filter((f) => f.startsWith(prefix)).sort()
      .flatMap((f) => readFileSync(join(archiveDir(), f), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as T));
  }

  it('deletes exactly the old finished operations and old events, archiving them first in private files', async () => {
    const oldSucceeded = await finishedOp(31);
    const oldFailed = await finishedOp(45, 'failed');
    const recent = await finishedOp(29);
    const oldTime = isoIn(-60 * DAY_MS);
    const queued = operationRow({ created_at: oldTime, updated_at: oldTime });
    const running = operationRow({ state: 'running', lease_owner: 'w1', lease_expires_at: oldTime, created_at: oldTime, updated_at: oldTime });
    await repos.operations.insert(store.db, queued);
    await repos.operations.insert(store.db, running);
    // An old finished operation a claim still holds capacity for: the claim sweeper needs it, so it stays.
    const held = await finishedOp(40);
    await store.db.insertInto('claims').values({
      id: newId('claim'), backend_id: newId('backend'), resource_type: 'volume', resource_id: newId('volume'), operation_id: held,
      bytes: 1024, state: 'held', expires_at: oldTime, created_at: oldTime,
    }).execute();
    await eventAt(91, 'old event 1');
    await eventAt(200, 'old event 2');
    await eventAt(89, 'recent event');

    const s = sweeper(policy());
    // Under the most permissive umask: modes come from the code, not from the umask.
    const sweep = await withUmask(0o000, () => s.sweep());

    expect(sweep).toMatchObject({ operationsPruned: 2, eventsPruned: 2, operationsArchived: 2, eventsArchived: 2, complete: true });
    expect(await operationIds()).toEqual([recent, queued.id, running.id, held].sort());
    expect(await eventMessages()).toEqual(['recent event']);

    const ops = archived<Operation>('operations-');
    expect(ops.map((o) => o.id).sort()).toEqual([oldSucceeded, oldFailed].sort());
    expect(ops.find((o) => o.id === oldFailed)).toMatchObject({ state: 'failed', kind: 'volume.create', tenantId: DEFAULT_TENANT_ID });
    expect(archived<StowageEvent>('events-').map((e) => e.message).sort()).toEqual(['old event 1', 'old event 2']);
    expect(statSync(archiveDir()).mode & 0o777).toBe(0o700);
    const files = readdirSync(archiveDir());
    expect(files.every((f) => f.endsWith('.ndjson'))).toBe(true);
    for (const f of files) expect(statSync(join(archiveDir(), f)).mode & 0o777, f).toBe(0o600);

    const swept = await store.db.selectFrom('events').selectAll().where('action', '=', 'retention-swept').execute();
    expect(swept).toHaveLength(1);
    expect(swept[0]).toMatchObject({ actor: 'system', resource_type: 'system', resource_id: 'retention' });

    const report = await s.report();
    expect(report.lastSweep).toMatchObject({ operationsPruned: 2, eventsPruned: 2, complete: true });
    expect(report.operations.kept).toBe(4);
    expect(report.events.kept).toBe(2);

    // Nothing left past the cutoff: a second sweep deletes nothing and records no event.
    expect(await s.sweep()).toMatchObject({ operationsPruned: 0, eventsPruned: 0 });
    expect(await store.db.selectFrom('events').select('id').where('action', '=', 'retention-swept').execute()).toHaveLength(1);
  });

  it('works through more rows than one batch, one archive file per batch', async () => {
    const old: string[] = [];
    for (let i = 0; i < 12; i++) old.push(await finishedOp(31 + i));
    for (let i = 0; i < 11; i++) await eventAt(91 + i, `old ${String(i)}`);
    const keep = await finishedOp(1);

    const sweep = await sweeper(policy(), 5).sweep();

    expect(sweep).toMatchObject({ operationsPruned: 12, eventsPruned: 11, operationsArchived: 12, eventsArchived: 11, complete: true });
    expect(await operationIds()).toEqual([keep]);
    expect(await eventMessages()).toEqual([]);
    const files = readdirSync(archiveDir());
    expect(files.filter((f) => f.startsWith('operations-'))).toHaveLength(3);
    expect(files.filter((f) => f.startsWith('events-'))).toHaveLength(3);
    expect(archived<Operation>('operations-').map((o) => o.id).sort()).toEqual([...old].sort());
    expect(archived<StowageEvent>('events-')).toHaveLength(11);
  });

  it('stops between batches when aborted and says it is not complete', async () => {
    for (let i = 0; i < 6; i++) await finishedOp(31 + i);
    const controller = new AbortController();
    controller.abort();
    expect(await sweeper(policy(), 5).sweep(controller.signal)).toMatchObject({ operationsPruned: 0, complete: false });
    expect(await operationIds()).toHaveLength(6);
  });

  it('keeps everything forever with 0 days, and writes no archive', async () => {
    await finishedOp(3650);
    await eventAt(3650, 'ancient');
    const sweep = await sweeper(policy({ operationRetentionDays: 0, eventRetentionDays: 0 })).sweep();
    expect(sweep).toMatchObject({ operationsPruned: 0, eventsPruned: 0, complete: true });
    expect(await operationIds()).toHaveLength(1);
    expect(await eventMessages()).toEqual(['ancient']);
    expect(existsSync(archiveDir())).toBe(false);
  });

  it('deletes without a copy when the archive is off', async () => {
    await finishedOp(31);
    expect(await sweeper(policy({ archive: false })).sweep()).toMatchObject({ operationsPruned: 1, operationsArchived: 0 });
    expect(await operationIds()).toEqual([]);
    expect(existsSync(archiveDir())).toBe(false);
  });
});

describe('retention policy at start', () => {
  it('warns when a table is kept forever, and says nothing otherwise', () => {
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => { warnings.push((JSON.parse(line) as { msg: string }).msg); } });
    const policy: RetentionPolicy = { operationRetentionDays: 0, eventRetentionDays: 90, archive: true, archiveDir: '/nonexistent' };
    new RetentionSweeper({} as Store, repos, policy, logger).warnIfUnbounded();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('operations are kept forever');
    new RetentionSweeper({} as Store, repos, { ...policy, operationRetentionDays: 30 }, logger).warnIfUnbounded();
    expect(warnings).toHaveLength(1);
  });
});
