import { Type } from '@sinclair/typebox';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StowageError } from '../core/errors.js';
import { DEFAULT_TENANT_ID } from '../core/ids.js';
import { OperationRepository } from '../store/operation-repository.js';
import { TenantRepository } from '../store/tenant-repository.js';
import { openStore, type Store } from '../store/store.js';
import { defineOperation, oneOf } from './define-operation.js';
import { OperationEngine, type EngineOptions } from './engine.js';
import { Failpoints } from './failpoints.js';

const FAST: EngineOptions = { leaseMs: 500, pollMs: 20, concurrency: 1, stepAttempts: 2, retryBaseMs: 1 };
const ResizeLike = Type.Object({ sizeBytes: Type.Integer({ minimum: 1 }), mode: oneOf(['rw', 'ro']), seen: Type.Optional(Type.Array(Type.String())) });
type Kinds = Record<'test.resize', { sizeBytes: number; mode: 'rw' | 'ro'; seen?: string[] }>;

describe('defineOperation: an operation\'s input is checked against its schema when written and when read back', () => {
  let store: Store;
  let engine: OperationEngine<Kinds>;
  const ran: string[] = [];

  const header = { tenantId: DEFAULT_TENANT_ID, targetType: 'volume', targetId: 'vol-1', actor: 'test' } as const;
  const definition = defineOperation({
    kind: 'test.resize',
    input: ResizeLike,
    steps: [
      // Typed reads: sizeBytes is a number and mode a union here, with no cast.
      { name: 'grow', run: async (ctx) => { ran.push(`grow:${String(ctx.input.sizeBytes * 2)}:${ctx.input.mode}`); await ctx.remember({ seen: ['grow'] }); } },
      { name: 'check', run: async (ctx) => { ran.push(`check:${(ctx.input.seen ?? []).join(',')}`); } },
    ],
    compensate: async (_ctx, error) => { ran.push(`compensate:${error.code}`); },
    result: async (ctx) => ({ sizeBytes: ctx.input.sizeBytes }),
  });

  beforeEach(async () => {
    ran.length = 0;
    store = await openStore('sqlite::memory:');
    await new TenantRepository().ensureDefaultTenant(store.db);
    engine = new OperationEngine<Kinds>(store, pino({ level: 'silent' }), Failpoints.none(), FAST, new OperationRepository());
    engine.register(definition);
  });
  afterEach(async () => {
    await engine.stop(100);
    await store.close();
  });

  it('runs steps on the typed input, remembered values included, and returns the typed result', async () => {
    const row = await engine.enqueue(store.db, { ...header, kind: 'test.resize', input: { sizeBytes: 21, mode: 'rw' } });
    engine.start();
    const op = await engine.waitFor(row.id, 10_000);
    expect(op.state).toBe('succeeded');
    expect(ran).toEqual(['grow:42:rw', 'check:grow']);
    expect(op.result).toEqual({ sizeBytes: 21 });
  });

  it('refuses an enqueue whose input does not fit, naming the field, and writes nothing', async () => {
    // What a buggy caller could still pass at run time (a JSON body cast on the way in, say).
    const bad = JSON.parse('{"sizeBytes":"10G","mode":"rw"}') as Kinds['test.resize'];
    const err = await engine.enqueue(store.db, { ...header, kind: 'test.resize', input: bad }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(StowageError);
    expect((err as StowageError).code).toBe('INTERNAL');
    expect((err as StowageError).message).toMatch(/test\.resize .*does not fit its schema: \/sizeBytes/);
    expect((await new OperationRepository().list(store.db, { tenantId: DEFAULT_TENANT_ID, limit: 10 })).rows).toEqual([]);
  });

  it('fails a row read back with an input that does not fit, with the reason, running no step and no compensation', async () => {
    const row = await engine.enqueue(store.db, { ...header, kind: 'test.resize', input: { sizeBytes: 21, mode: 'rw' } });
    // The row as an older version, or a hand edit, might have left it.
    await store.db.updateTable('operations').set({ input: JSON.stringify({ sizeBytes: 21, mode: 'rwx' }) }).where('id', '=', row.id).execute();
    engine.start();
    const op = await engine.waitFor(row.id, 10_000);
    expect(op.state).toBe('failed');
    expect(op.error?.code).toBe('INTERNAL');
    expect(op.error?.message).toMatch(/does not fit its schema: \/mode.*nothing was run/);
    expect(op.stepsDone).toEqual([]);
    expect(ran).toEqual([]);
  });
});
