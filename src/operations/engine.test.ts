import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { StowageError } from '../core/errors.js';
import { DEFAULT_TENANT_ID } from '../core/ids.js';
import { TenantRepository } from '../store/tenant-repository.js';
import { OperationRepository } from '../store/operation-repository.js';
import { openStore, type Store } from '../store/store.js';
import { OperationEngine, type EngineOptions } from './engine.js';
import { Failpoints } from './failpoints.js';
import type { OperationHandler } from './handler.js';

const FAST: EngineOptions = { leaseMs: 500, pollMs: 20, concurrency: 2, stepAttempts: 3, retryBaseMs: 1 };
const logger = pino({ level: 'silent' });

describe('OperationEngine', () => {
  let store: Store;
  const engines: OperationEngine[] = [];

  beforeEach(async () => {
    store = await openStore('sqlite::memory:');
    await new TenantRepository().ensureDefaultTenant(store.db);
  });
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.stop(100)));
    await store.close();
  });

  function engine(handler: OperationHandler, options = FAST): OperationEngine {
    const e = new OperationEngine(store, logger, Failpoints.none(), options);
    e.register(handler);
    engines.push(e);
    return e;
  }

  async function submit(e: OperationEngine, kind: string): Promise<string> {
    const row = await e.enqueue(store.db, { kind, tenantId: DEFAULT_TENANT_ID, targetType: 't', targetId: 't-1', input: {}, actor: 'test' });
    e.start();
    return row.id;
  }

  it('runs steps in order, records each, and succeeds with the result', async () => {
    const seen: string[] = [];
    const e = engine({
      kind: 'k', steps: [{ name: 'a', run: async () => { seen.push('a'); } }, { name: 'b', run: async (ctx) => { seen.push('b'); ctx.note('via b'); } }],
      compensate: async () => { seen.push('compensate'); }, result: async () => ({ ok: 1 }),
    });
    const op = await e.waitFor(await submit(e, 'k'), 10_000);
    expect(op.state).toBe('succeeded');
    expect(seen).toEqual(['a', 'b']);
    expect(op.stepsDone.map((s) => s.name)).toEqual(['a', 'b']);
    expect(op.stepsDone[1]?.note).toBe('via b');
    expect(op.result).toEqual({ ok: 1 });
  });

  it('retries transient errors, then succeeds', async () => {
    let calls = 0;
    const e = engine({
      kind: 'k', steps: [{ name: 'a', run: async () => { calls++; if (calls < 3) throw new StowageError('BACKEND_UNAVAILABLE', 'down'); } }],
      compensate: async () => undefined,
    });
    const op = await e.waitFor(await submit(e, 'k'), 10_000);
    expect(op.state).toBe('succeeded');
    expect(calls).toBe(3);
  });

  it('does not retry permanent errors: compensates once and fails with the error', async () => {
    let calls = 0;
    const compensated: string[] = [];
    const e = engine({
      kind: 'k', steps: [{ name: 'a', run: async () => { calls++; throw new StowageError('INVALID_STATE', 'nope'); } }, { name: 'b', run: async () => { throw new Error('must not run'); } }],
      compensate: async (_ctx, err) => { compensated.push(err.code); },
    });
    const op = await e.waitFor(await submit(e, 'k'), 10_000);
    expect(op.state).toBe('failed');
    expect(op.error?.code).toBe('INVALID_STATE');
    expect(calls).toBe(1);
    expect(compensated).toEqual(['INVALID_STATE']);
  });

  it('resumes an operation whose worker died, from the unfinished step only', async () => {
    const seen: string[] = [];
    const handler: OperationHandler = {
      kind: 'k', steps: [{ name: 'a', run: async () => { seen.push('a'); } }, { name: 'b', run: async () => { seen.push('b'); } }],
      compensate: async () => undefined,
    };
    const repo = new OperationRepository();
    const dead = new OperationEngine(store, logger, Failpoints.none(), FAST);
    dead.register(handler);
    const row = await dead.enqueue(store.db, { kind: 'k', tenantId: DEFAULT_TENANT_ID, targetType: 't', targetId: 't-1', input: {}, actor: 'test' });
    // A worker that claimed it, finished step a, and died with its lease still running.
    const past = new Date(Date.now() - 1000).toISOString();
    const deadLease = await repo.claim(store.db, row.id, 'dead-worker', new Date().toISOString(), new Date(Date.now() + 300).toISOString());
    expect(deadLease).not.toBeNull();
    if (deadLease) await repo.recordStep(store.db, row.id, deadLease, [{ name: 'a', at: past }], 'b');
    const e = engine(handler);
    e.start();
    const op = await e.waitFor(row.id, 10_000);
    expect(op.state).toBe('succeeded');
    expect(seen).toEqual(['b']);
    expect(op.stepsDone.map((s) => s.name)).toEqual(['a', 'b']);
    expect(op.attempts).toBe(2);
  });

  it('a crash during compensation resumes the compensation, not the steps', async () => {
    const seen: string[] = [];
    const repo = new OperationRepository();
    const handler: OperationHandler = {
      kind: 'k', steps: [{ name: 'a', run: async () => { seen.push('a'); } }],
      compensate: async (_ctx, err) => { seen.push(`compensate:${err.code}`); },
    };
    const e = engine(handler);
    const row = await e.enqueue(store.db, { kind: 'k', tenantId: DEFAULT_TENANT_ID, targetType: 't', targetId: 't-1', input: { __failure: { code: 'DRIVER_FAILED', message: 'boom', details: {} } }, actor: 'test' });
    await repo.tryClaim(store.db, row.id, 'dead-worker', new Date().toISOString(), new Date(Date.now() + 200).toISOString());
    e.start();
    const op = await e.waitFor(row.id, 10_000);
    expect(op.state).toBe('failed');
    expect(op.error?.code).toBe('DRIVER_FAILED');
    expect(seen).toEqual(['compensate:DRIVER_FAILED']);
  });
});
