import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newId } from '../../src/core/ids.js';
import { ALL, MiB, expectCode, expectRefusedChangingNothing, filesUnder, openServiceWorld, type ServiceWorld } from './services-kit.js';

/**
 * SnapshotService on a real store and a real dir backend: a snapshot is a file beside its volume,
 * deleting it removes that file, a volume with snapshots cannot be deleted, and refusals change nothing.
 */
describe('SnapshotService (service tier)', () => {
  let w: ServiceWorld;
  let dir: string;

  beforeEach(async () => {
    w = await openServiceWorld();
    dir = (await w.addDirBackend('b1')).dir;
    await w.finish((await w.cp.volumes.create({ name: 'vol', sizeBytes: 4 * MiB }, w.ctx)).operation);
  });
  afterEach(async () => { await w.close(); });

  it('takes a snapshot on the dir backend (a second file of the volume\'s size) and deletes it (the file goes)', async () => {
    expect(filesUnder(dir)).toHaveLength(1);
    const { snapshot, operation } = await w.cp.snapshots.create('vol', 'snap1', w.ctx);
    expect(snapshot).toMatchObject({ name: 'snap1', volumeName: 'vol', state: 'creating', sizeBytes: 4 * MiB });
    expect((await w.finish(operation)).state).toBe('succeeded');
    const taken = await w.cp.snapshots.get('snap1', w.ctx.tenantId);
    expect(taken.state).toBe('available');
    expect(taken.method).not.toBeNull();
    const files = filesUnder(dir);
    expect(files).toHaveLength(2);
    expect(files.every((f) => f.endsWith(`:${String(4 * MiB)}`)), files.join('\n')).toBe(true);
    expect((await w.cp.backends.get('b1')).capacity.claimedBytes).toBe(0);
    expect((await w.cp.snapshots.list(w.ctx.tenantId, 'vol', ALL)).items.map((s) => s.name)).toEqual(['snap1']);

    const del = await w.cp.snapshots.delete('snap1', w.ctx);
    expect(del.snapshot.state).toBe('deleting');
    expect((await w.finish(del.operation)).state).toBe('succeeded');
    expect(filesUnder(dir)).toHaveLength(1);
    await expectCode(w.cp.snapshots.get('snap1', w.ctx.tenantId), 'SNAPSHOT_NOT_FOUND');
    expect((await w.cp.snapshots.list(w.ctx.tenantId, 'vol', ALL)).items).toEqual([]);
  });

  it('keeps a volume that has snapshots from being deleted, until they are gone', async () => {
    await w.finish((await w.cp.snapshots.create('vol', 'keep', w.ctx)).operation);
    await expectRefusedChangingNothing(w, [['VOLUME_IN_USE', () => w.cp.volumes.delete('vol', w.ctx)]]);
    await w.finish((await w.cp.snapshots.delete('keep', w.ctx)).operation);
    expect((await w.finish((await w.cp.volumes.delete('vol', w.ctx)).operation)).state).toBe('succeeded');
    expect(filesUnder(dir)).toEqual([]);
  });

  it('refuses bad names, taken names, unknown volumes and snapshots, and a volume that is not available, changing nothing', async () => {
    await w.finish((await w.cp.snapshots.create('vol', 'taken', w.ctx)).operation);
    await w.holdWorkers();
    const busy = await w.cp.volumes.create({ name: 'busy', sizeBytes: MiB }, w.ctx);
    await expectRefusedChangingNothing(w, [
      ['INVALID_NAME', () => w.cp.snapshots.create('vol', 'Bad Name', w.ctx)],
      ['INVALID_NAME', () => w.cp.snapshots.create('vol', newId('snapshot'), w.ctx)],
      ['NAME_TAKEN', () => w.cp.snapshots.create('vol', 'taken', w.ctx)],
      ['VOLUME_NOT_FOUND', () => w.cp.snapshots.create('nothing', 's1', w.ctx)],
      ['INVALID_STATE', () => w.cp.snapshots.create('busy', 's1', w.ctx)],
      ['SNAPSHOT_NOT_FOUND', () => w.cp.snapshots.delete('nothing', w.ctx)],
    ]);
    await w.finish(busy.operation);
  });
});
