import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newId } from '../../src/core/ids.js';
import { MiB, expectCode, expectRefusedChangingNothing, filesUnder, openServiceWorld, type ServiceWorld } from './services-kit.js';

/**
 * VolumeService's rules on a real SQLite file and a real dir backend, with no HTTP: create, grow and
 * delete do what they say on disk; placement never promises more than the backend's usable
 * capacity, counting the claims of creates that have not run yet; a key replays its operation; and
 * refused input changes no row and no file.
 */
describe('VolumeService (service tier)', () => {
  let w: ServiceWorld;
  /** Usable bytes of the test backend, rounded down to whole MiB (its total is the real filesystem's). */
  let usable: number;
  let dir: string;

  beforeEach(async () => {
    w = await openServiceWorld();
    // A 99.9 % reserve leaves a small, known room on whatever disk the temp dir is on.
    const b = await w.addDirBackend('b1', { reservedPercent: 99.9 });
    dir = b.dir;
    usable = Math.floor(b.backend.capacity.usableBytes / MiB) * MiB;
    expect(usable).toBeGreaterThan(8 * MiB);
  });
  afterEach(async () => { await w.close(); });

  const backend = () => w.cp.backends.get('b1');

  it('creates a volume: the worker makes its file at the size, the claim becomes provisioned bytes', async () => {
    const { operation, resource } = await w.cp.volumes.create({ name: 'v1', sizeBytes: 4 * MiB }, w.ctx);
    expect(resource).toMatchObject({ name: 'v1', state: 'creating', backendName: 'b1', sizeBytes: 4 * MiB });
    expect((await backend()).capacity).toMatchObject({ claimedBytes: 4 * MiB, provisionedBytes: 0 });
    expect((await w.finish(operation)).state).toBe('succeeded');
    expect((await w.cp.volumes.get('v1', w.ctx.tenantId)).state).toBe('available');
    expect(filesUnder(dir).filter((f) => f.endsWith(`:${String(4 * MiB)}`))).toHaveLength(1);
    expect((await backend()).capacity).toMatchObject({ claimedBytes: 0, provisionedBytes: 4 * MiB });
  });

  it('grows a volume on disk, and refuses to shrink it or to "grow" it to its own size, changing nothing', async () => {
    await w.finish((await w.cp.volumes.create({ name: 'v1', sizeBytes: 4 * MiB }, w.ctx)).operation);
    const grow = await w.cp.volumes.resize('v1', 8 * MiB, w.ctx);
    expect(grow.resource.state).toBe('resizing');
    expect((await w.finish(grow.operation)).state).toBe('succeeded');
    expect(await w.cp.volumes.get('v1', w.ctx.tenantId)).toMatchObject({ state: 'available', sizeBytes: 8 * MiB });
    expect(filesUnder(dir).filter((f) => f.endsWith(`:${String(8 * MiB)}`))).toHaveLength(1);
    expect((await backend()).capacity).toMatchObject({ claimedBytes: 0, provisionedBytes: 8 * MiB });
    await expectRefusedChangingNothing(w, [
      ['SHRINK_NOT_SUPPORTED', () => w.cp.volumes.resize('v1', 4 * MiB, w.ctx)],
      ['INVALID_STATE', () => w.cp.volumes.resize('v1', 8 * MiB, w.ctx)],
      ['INVALID_SIZE', () => w.cp.volumes.resize('v1', 0, w.ctx)],
      ['NO_VALID_BACKEND', () => w.cp.volumes.resize('v1', usable + 64 * MiB, w.ctx)],
      ['VOLUME_NOT_FOUND', () => w.cp.volumes.resize('nope', 16 * MiB, w.ctx)],
    ]);
  });

  it('deletes a volume: its file goes, its bytes are released, its name is free again', async () => {
    await w.finish((await w.cp.volumes.create({ name: 'v1', sizeBytes: 4 * MiB }, w.ctx)).operation);
    const del = await w.cp.volumes.delete('v1', w.ctx);
    expect(del.resource.state).toBe('deleting');
    expect((await w.finish(del.operation)).state).toBe('succeeded');
    expect(filesUnder(dir)).toEqual([]);
    await expectCode(w.cp.volumes.get('v1', w.ctx.tenantId), 'VOLUME_NOT_FOUND');
    expect((await w.cp.volumes.get(del.resource.id, w.ctx.tenantId)).state).toBe('deleted');
    expect((await backend()).capacity).toMatchObject({ claimedBytes: 0, provisionedBytes: 0 });
    expect((await w.finish((await w.cp.volumes.create({ name: 'v1', sizeBytes: MiB }, w.ctx)).operation)).state).toBe('succeeded');
  });

  it('refuses a volume larger than the usable capacity with NO_VALID_BACKEND naming the capacity filter', async () => {
    const e = await expectCode(w.cp.volumes.create({ name: 'huge', sizeBytes: usable + MiB }, w.ctx), 'NO_VALID_BACKEND');
    expect(e.details.verdicts).toEqual([expect.objectContaining({ backend: 'b1', filter: 'capacity' })]);
    // Exactly the usable room still fits.
    expect((await w.finish((await w.cp.volumes.create({ name: 'fits', sizeBytes: usable }, w.ctx)).operation)).state).toBe('succeeded');
    await expectCode(w.cp.volumes.create({ name: 'one-more', sizeBytes: MiB }, w.ctx), 'NO_VALID_BACKEND');
  });

  it('counts a create that has not run yet: its claim refuses a second that only fits without it', async () => {
    const half = Math.floor(usable / 2 / MiB) * MiB + MiB;
    const first = await w.cp.volumes.create({ name: 'first', sizeBytes: half }, w.ctx);
    // No worker has run: the first volume has no file yet, only its claim.
    expect(filesUnder(dir)).toEqual([]);
    expect((await backend()).capacity.claimedBytes).toBe(half);
    await expectRefusedChangingNothing(w, [['NO_VALID_BACKEND', () => w.cp.volumes.create({ name: 'second', sizeBytes: half }, w.ctx)]]);
    expect((await w.finish(first.operation)).state).toBe('succeeded');
    // Committed now: still counted, as provisioned bytes.
    expect((await backend()).capacity).toMatchObject({ claimedBytes: 0, provisionedBytes: half });
    await expectCode(w.cp.volumes.create({ name: 'second', sizeBytes: half }, w.ctx), 'NO_VALID_BACKEND');
  });

  it('answers a repeated create with the same Idempotency-Key with the first operation, and makes one volume', async () => {
    const ctx = { ...w.ctx, idempotencyKey: 'same-key' };
    const a = await w.cp.volumes.create({ name: 'idem', sizeBytes: 2 * MiB }, ctx);
    const b = await w.cp.volumes.create({ name: 'idem', sizeBytes: 2 * MiB }, ctx);
    expect(b.operation.id).toBe(a.operation.id);
    expect(b.resource.id).toBe(a.resource.id);
    await w.finish(a.operation);
    const c = await w.cp.volumes.create({ name: 'idem', sizeBytes: 2 * MiB }, ctx);
    expect(c.operation).toMatchObject({ id: a.operation.id, state: 'succeeded' });
    const page = await w.cp.volumes.list({ tenantId: w.ctx.tenantId, limit: 100 });
    expect(page.items.map((v) => v.name)).toEqual(['idem']);
    expect(filesUnder(dir)).toHaveLength(1);
    // The same key on another kind of request is a conflict, not a replay.
    await expectRefusedChangingNothing(w, [['IDEMPOTENCY_CONFLICT', () => w.cp.volumes.delete('idem', ctx)]]);
  });

  it('refuses bad input with its code and changes no row and no file', async () => {
    await w.finish((await w.cp.volumes.create({ name: 'taken', sizeBytes: MiB }, w.ctx)).operation);
    await expectRefusedChangingNothing(w, [
      ['INVALID_NAME', () => w.cp.volumes.create({ name: 'Not A Name!', sizeBytes: MiB }, w.ctx)],
      ['INVALID_NAME', () => w.cp.volumes.create({ name: newId('volume'), sizeBytes: MiB }, w.ctx)],
      ['INVALID_SIZE', () => w.cp.volumes.create({ name: 'zero', sizeBytes: 0 }, w.ctx)],
      ['INVALID_SIZE', () => w.cp.volumes.create({ name: 'frac', sizeBytes: 1.5 }, w.ctx)],
      ['NAME_TAKEN', () => w.cp.volumes.create({ name: 'taken', sizeBytes: MiB }, w.ctx)],
      ['BACKEND_NOT_FOUND', () => w.cp.volumes.create({ name: 'pinned', sizeBytes: MiB, backend: 'nowhere' }, w.ctx)],
      ['CLASS_NOT_FOUND', () => w.cp.volumes.create({ name: 'classy', sizeBytes: MiB, class: 'nope' }, w.ctx)],
      ['VOLUME_NOT_FOUND', () => w.cp.volumes.create({ name: 'clone', sizeBytes: 0, fromVolume: 'nope' }, w.ctx)],
      ['VOLUME_NOT_FOUND', () => w.cp.volumes.delete('nope', w.ctx)],
    ]);
  });
});
