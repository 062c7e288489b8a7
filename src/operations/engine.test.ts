import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { StowageError } from '../core/errors.js';
import { DEFAULT_TENANT_ID } from '../core/ids.js';
import { EventRepository } from '../store/event-repository.js';
import { TenantRepository } from '../store/tenant-repository.js';
import { OperationRepository } from '../store/operation-repository.js';
import type { OperationRow } from '../store/schema.js';
import { openStore, type Store } from '../store/store.js';
import { concurrentMoveError } from '../store/transition.js';
import { OperationEngine, type EngineOptions } from './engine.js';
import { Failpoints } from './failpoints.js';
import type { OperationHandler, StepContext } from './handler.js';
import { isLeaseLost, LeaseLostError } from './lease-lost-error.js';

// Unit timings so lease expiry and retries happen in milliseconds; the engine on the shipped lease and poll: test/defaults/replica-lease.ts.
const FAST: EngineOptions = { leaseMs: 500, pollMs: 20, concurrency: 2, stepAttempts: 3, retryBaseMs: 1 };
const logger = pino({ level: 'silent' });
/** These tests run kinds of their own ('k', …) with free-form input. */
type AnyKinds = Record<string, Record<string, unknown>>;

describe('OperationEngine', () => {
  let store: Store;
  const engines: OperationEngine<AnyKinds>[] = [];

  beforeEach(async () => {
    store = await openStore('sqlite::memory:');
    await new TenantRepository().ensureDefaultTenant(store.db);
  });
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.stop(100)));
    await store.close();
  });

  function engine(handler: OperationHandler, options = FAST): OperationEngine<AnyKinds> {
    const e = new OperationEngine<AnyKinds>(store, logger, Failpoints.none(), options, new OperationRepository());
    e.register(handler);
    engines.push(e);
    return e;
  }

  async function submit(e: OperationEngine<AnyKinds>, kind: string): Promise<string> {
    const row = await e.enqueue(store.db, { kind, tenantId: DEFAULT_TENANT_ID, targetType: 't', targetId: 't-1', input: {}, actor: 'test' });
    e.start();
    return row.id;
  }

  it('an inline record hits <kind>/record:before inside its transaction, before the commit, and recorded() hits :after', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stowage-inline-fp-'));
    try {
      const reached = join(dir, 'reached');
      const e = new OperationEngine(store, logger, new Failpoints('host.update/record:before=sleep:1,host.update/record:after=sleep:1', reached), FAST, new OperationRepository());
      const seenAtBefore: string[] = [];
      await store.transaction(async (trx) => {
        const row = await e.record(trx, { kind: 'host.update', tenantId: DEFAULT_TENANT_ID, targetType: 'host', targetId: 'h-1', input: {}, actor: 'test' }, {});
        seenAtBefore.push(...readFileSync(reached, 'utf8').split('\n').filter(Boolean));
        // Inside the transaction the row is there; the failpoint has fired with the commit still to come.
        expect((await new OperationRepository().findById(trx, row.id))?.state).toBe('succeeded');
      });
      expect(seenAtBefore).toEqual(['host.update/record:before', 'host.update/record:before:woke']);
      await e.recorded('host.update');
      expect(readFileSync(reached, 'utf8').split('\n').filter(Boolean).slice(2)).toEqual(['host.update/record:after', 'host.update/record:after:woke']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

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

  it('runs a step again when another writer overtook one of its moves, from a fresh read', async () => {
    let calls = 0;
    const e = engine({
      kind: 'k', steps: [{ name: 'a', run: async () => { calls++; if (calls === 1) throw concurrentMoveError('host', 'host-x', 'up', 'fenced'); } }],
      compensate: async () => { throw new Error('must not compensate'); },
    });
    const op = await e.waitFor(await submit(e, 'k'), 10_000);
    expect(op.state).toBe('succeeded');
    expect(calls).toBe(2);
  });

  it('resumes an operation whose worker died, from the unfinished step only', async () => {
    const seen: string[] = [];
    const handler: OperationHandler = {
      kind: 'k', steps: [{ name: 'a', run: async () => { seen.push('a'); } }, { name: 'b', run: async () => { seen.push('b'); } }],
      compensate: async () => undefined,
    };
    const repo = new OperationRepository();
    const dead = new OperationEngine<AnyKinds>(store, logger, Failpoints.none(), FAST, new OperationRepository());
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

const repo = new OperationRepository();
const events = new EventRepository();

/** Polls `probe` until it is true (no timing is asserted; the limit is only a safety net). */
async function until(what: string, probe: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Blocks this thread (timers included) for `ms`, like a SIGSTOP of the whole process. */
function freeze(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// The epoch rules of the operation engine: another worker's takeover fences every later write and
// driver call of the worker it replaced, and a lost lease is never treated as a step failure.
describe('OperationEngine lease fencing', () => {
  let store: Store;
  let engine: OperationEngine<AnyKinds>;

  beforeEach(async () => {
    store = await openStore('sqlite::memory:');
    await new TenantRepository().ensureDefaultTenant(store.db);
  });
  afterEach(async () => {
    await engine.stop(100);
    await store.close();
  });

  async function run(handler: OperationHandler): Promise<OperationRow> {
    engine = new OperationEngine<AnyKinds>(store, logger, Failpoints.none(), FAST, new OperationRepository());
    engine.register(handler);
    const row = await engine.enqueue(store.db, { kind: handler.kind, tenantId: DEFAULT_TENANT_ID, targetType: 't', targetId: 't-1', input: { keep: 1 }, actor: 'test' });
    engine.start();
    return row;
  }

  /** What another worker does once our lease ran out: claim the operation with the next epoch. */
  async function takeOver(id: string): Promise<void> {
    await store.db.updateTable('operations').set({ lease_expires_at: new Date(Date.now() - 1).toISOString() }).where('id', '=', id).execute();
    expect(await repo.tryClaim(store.db, id, 'thief', new Date().toISOString(), new Date(Date.now() + 60_000).toISOString())).toBe(true);
  }

  async function row(id: string): Promise<OperationRow> {
    const r = await repo.findById(store.db, id);
    if (!r) throw new Error('operation vanished');
    return r;
  }

  it('gives every claim the next epoch, and the step sees the epoch it runs under', async () => {
    const epochs: number[] = [];
    const op = await run({ kind: 'k', steps: [{ name: 'a', run: async (ctx) => { epochs.push(ctx.epoch); } }], compensate: async () => undefined });
    expect((await engine.waitFor(op.id, 10_000)).state).toBe('succeeded');
    expect(epochs).toEqual([1]);
    expect((await row(op.id)).lease_epoch).toBe(1);
  });

  it('a takeover aborts the running step at once; its failure then is not a failure: no retry, compensation, input or finish', async () => {
    let ctxSeen: StepContext | undefined;
    let calls = 0;
    let compensated = 0;
    const op = await run({
      kind: 'k',
      steps: [{
        name: 'long',
        run: async (ctx) => {
          calls++;
          ctxSeen = ctx;
          await new Promise<void>((resolve) => { ctx.signal.addEventListener('abort', () => { resolve(); }, { once: true }); });
          // What a killed child looks like to the step: a transient-looking error.
          throw new StowageError('BACKEND_UNAVAILABLE', 'the copy was killed');
        },
      }],
      compensate: async () => { compensated++; },
    });
    await until('the step to start', () => ctxSeen !== undefined);
    await takeOver(op.id);
    await until('the step to be aborted', () => ctxSeen?.signal.aborted === true);
    expect(isLeaseLost(ctxSeen?.signal.reason)).toBe(true);
    await until('the worker to let go', async () => (await engine.waitFor(op.id, 0)).state === 'running' && !engineBusy(engine));
    expect(calls).toBe(1);
    expect(compensated).toBe(0);
    expect(await row(op.id)).toMatchObject({ state: 'running', lease_owner: 'thief', lease_epoch: 2, input: JSON.stringify({ keep: 1 }), error: null, steps_done: '[]', finished_at: null });
  });

  it('a step that retries internally after the takeover writes nothing: every ctx.write and remember throws LeaseLostError', async () => {
    const outcomes: string[] = [];
    let started = false;
    const op = await run({
      kind: 'k',
      steps: [{
        name: 'retrying',
        run: async (ctx) => {
          started = true;
          await new Promise<void>((resolve) => { ctx.signal.addEventListener('abort', () => { resolve(); }, { once: true }); });
          for (let i = 0; i < 3; i++) {
            try {
              await ctx.write((trx) => events.append(trx, { tenantId: DEFAULT_TENANT_ID, actor: 'test', resourceType: 't', resourceId: 't-1', resourceName: null, action: 'stale', from: null, to: null, message: 'stale write', operationId: ctx.operation.id }));
              outcomes.push('written');
            } catch (err) {
              outcomes.push(err instanceof LeaseLostError ? 'fenced' : String(err));
            }
          }
          await ctx.remember({ stale: true }).catch((err: unknown) => { outcomes.push(isLeaseLost(err) ? 'fenced' : String(err)); });
        },
      }],
      compensate: async () => { outcomes.push('compensated'); },
    });
    await until('the step to start', () => started);
    await takeOver(op.id);
    await until('the step to give up', () => outcomes.length >= 4);
    await until('the worker to let go', () => !engineBusy(engine));
    expect(outcomes).toEqual(['fenced', 'fenced', 'fenced', 'fenced']);
    expect(await store.db.selectFrom('events').selectAll().where('action', '=', 'stale').execute()).toEqual([]);
    expect(await row(op.id)).toMatchObject({ state: 'running', lease_owner: 'thief', lease_epoch: 2, input: JSON.stringify({ keep: 1 }), steps_done: '[]' });
  });

  it('a worker frozen past its lease makes no driver call when it wakes, before any timer or store round trip could tell it', async () => {
    const driverCalls: string[] = [];
    const driver = { deleteVolume: (id: string): string => { driverCalls.push(id); return id; }, scheme: 'fake' };
    const outcomes: string[] = [];
    const op = await run({
      kind: 'k',
      steps: [{
        name: 'frozen',
        run: async (ctx) => {
          if (ctx.epoch > 1) return; // the fresh claim after the freeze just finishes
          const guarded = ctx.guard(driver);
          guarded.deleteVolume('before');
          freeze(FAST.leaseMs + 100);
          try {
            guarded.deleteVolume('after');
          } catch (err) {
            outcomes.push(err instanceof LeaseLostError ? 'fenced' : String(err));
          }
          outcomes.push(`aborted:${String(ctx.signal.aborted)}`, `scheme:${guarded.scheme}`);
        },
      }],
      compensate: async () => { outcomes.push('compensated'); },
    });
    // The step that "succeeded" after its lease ran out is not recorded: a fresh claim runs it again.
    const done = await engine.waitFor(op.id, 10_000);
    expect(done.state).toBe('succeeded');
    expect(done.attempts).toBe(2);
    expect(driverCalls).toEqual(['before']);
    expect(outcomes).toEqual(['fenced', 'aborted:true', 'scheme:fake']);
  });

  it('no step starts once the lease is gone: the next step never runs after the takeover', async () => {
    const seen: string[] = [];
    const op = await run({
      kind: 'k',
      steps: [
        { name: 'a', run: async (ctx) => { seen.push('a'); await takeOver(ctx.operation.id); } },
        { name: 'b', run: async () => { seen.push('b'); } },
      ],
      compensate: async () => { seen.push('compensated'); },
      result: async () => { seen.push('result'); return {}; },
    });
    await until('step a', () => seen.length >= 1);
    await until('the worker to let go', () => !engineBusy(engine));
    expect(seen).toEqual(['a']);
    expect(await row(op.id)).toMatchObject({ state: 'running', lease_owner: 'thief', steps_done: '[]', result: null });
  });

  it('a takeover during compensation stops it: the stale worker does not finish the operation', async () => {
    const seen: string[] = [];
    const op = await run({
      kind: 'k',
      steps: [{ name: 'a', run: async () => { throw new StowageError('INVALID_STATE', 'nope'); } }],
      compensate: async (ctx) => {
        seen.push('compensate');
        await takeOver(ctx.operation.id);
        await ctx.write(async () => { seen.push('wrote'); });
      },
    });
    await until('compensation', () => seen.length >= 1);
    await until('the worker to let go', () => !engineBusy(engine));
    expect(seen).toEqual(['compensate']);
    const r = await row(op.id);
    expect(r).toMatchObject({ state: 'running', lease_owner: 'thief', finished_at: null, error: null });
    // The failure was remembered before the takeover, so the new owner resumes the compensation.
    expect(JSON.parse(r.input)).toMatchObject({ __failure: { code: 'INVALID_STATE' } });
  });
});

/** True while the engine still runs an operation (its private map, read for the test only). */
function engineBusy(e: OperationEngine<AnyKinds>): boolean {
  return (e as unknown as { running: Map<string, unknown> }).running.size > 0;
}
