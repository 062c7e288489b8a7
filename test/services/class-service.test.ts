import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ALL, MiB, expectCode, expectRefusedChangingNothing, openServiceWorld, type ServiceWorld } from './services-kit.js';

/**
 * ClassService's rules and how VolumeService applies them, on a real store with two real dir
 * backends (one tagged ssd in az1, one tagged hdd in az2): one default class at most, constraints
 * that cannot hold refused, a class's tags and zone steering placement, no deleting a class in use.
 */
describe('ClassService (service tier)', () => {
  let w: ServiceWorld;

  beforeEach(async () => {
    w = await openServiceWorld();
    await w.addDirBackend('fast', { tags: ['ssd'], zone: 'az1', cost: 5 });
    await w.addDirBackend('slow', { tags: ['hdd'], zone: 'az2', cost: 1 });
  });
  afterEach(async () => { await w.close(); });

  const placedOn = async (name: string, cls?: string): Promise<string | null> => {
    const { operation, resource } = await w.cp.volumes.create({ name, sizeBytes: MiB, ...(cls !== undefined ? { class: cls } : {}) }, w.ctx);
    expect((await w.finish(operation)).state).toBe('succeeded');
    return resource.backendName;
  };

  it('keeps one default class at most: a new default takes over from the old one', async () => {
    await w.cp.classes.create({ name: 'gold', default: true }, 'test');
    await w.cp.classes.create({ name: 'silver', default: true }, 'test');
    const defaults = (await w.cp.classes.list(ALL)).items.filter((c) => c.isDefault).map((c) => c.name);
    expect(defaults).toEqual(['silver']);
    await w.cp.classes.update('gold', { default: true }, 'test');
    expect((await w.cp.classes.list(ALL)).items.filter((c) => c.isDefault).map((c) => c.name)).toEqual(['gold']);
  });

  it('steers placement by its tags and zone, and the default class applies when a request names none', async () => {
    // Without a class the cheapest backend wins.
    expect(await placedOn('plain')).toBe('slow');
    await w.cp.classes.create({ name: 'fast-only', requiredTags: ['ssd'] }, 'test');
    expect(await placedOn('tagged', 'fast-only')).toBe('fast');
    await w.cp.classes.create({ name: 'not-hdd', forbiddenTags: ['hdd'], default: true }, 'test');
    expect(await placedOn('by-default')).toBe('fast');
    await w.cp.classes.create({ name: 'in-az2', zone: 'az2' }, 'test');
    expect(await placedOn('zoned', 'in-az2')).toBe('slow');
    expect((await w.cp.classes.get('fast-only')).volumeCount).toBe(1);
  });

  it('refuses a volume no backend of the class can take with NO_VALID_BACKEND, changing nothing', async () => {
    await w.cp.classes.create({ name: 'nvme', requiredTags: ['nvme'] }, 'test');
    await w.cp.classes.create({ name: 'nowhere', requiredTags: ['ssd'], zone: 'az2' }, 'test');
    await expectRefusedChangingNothing(w, [
      ['NO_VALID_BACKEND', () => w.cp.volumes.create({ name: 'v', sizeBytes: MiB, class: 'nvme' }, w.ctx)],
      ['NO_VALID_BACKEND', () => w.cp.volumes.create({ name: 'v', sizeBytes: MiB, class: 'nowhere' }, w.ctx)],
      ['VALIDATION_FAILED', () => w.cp.volumes.create({ name: 'v', sizeBytes: MiB, class: 'nowhere', zone: 'az1' }, w.ctx)],
    ]);
  });

  it('refuses impossible or invalid constraints and taken names, changing nothing', async () => {
    await w.cp.classes.create({ name: 'gold' }, 'test');
    const e = await expectCode(w.cp.classes.create({ name: 'x', requiredTags: ['a'], forbiddenTags: ['a'] }, 'test'), 'VALIDATION_FAILED');
    expect(e.message).toContain('both required and forbidden');
    await expectRefusedChangingNothing(w, [
      ['VALIDATION_FAILED', () => w.cp.classes.create({ name: 'x', requiredTags: ['a', 'b'], forbiddenTags: ['b'] }, 'test')],
      ['VALIDATION_FAILED', () => w.cp.classes.update('gold', { requiredTags: ['c'], forbiddenTags: ['c'] }, 'test')],
      ['NAME_TAKEN', () => w.cp.classes.create({ name: 'gold' }, 'test')],
      ['INVALID_NAME', () => w.cp.classes.create({ name: 'Gold Class' }, 'test')],
      ['INVALID_NAME', () => w.cp.classes.create({ name: 'y', zone: 'bad zone' }, 'test')],
      ['CLASS_NOT_FOUND', () => w.cp.classes.update('platinum', { policy: 'spread' }, 'test')],
      ['CLASS_NOT_FOUND', () => w.cp.classes.delete('platinum', 'test')],
    ]);
  });

  it('refuses to delete a class a live volume uses, and deletes it once the volume is gone', async () => {
    await w.cp.classes.create({ name: 'bulk', requiredTags: ['hdd'] }, 'test');
    await placedOn('uses-bulk', 'bulk');
    await expectRefusedChangingNothing(w, [['CLASS_IN_USE', () => w.cp.classes.delete('bulk', 'test')]]);
    await w.finish((await w.cp.volumes.delete('uses-bulk', w.ctx)).operation);
    await w.cp.classes.delete('bulk', 'test');
    await expectCode(w.cp.classes.get('bulk'), 'CLASS_NOT_FOUND');
  });
});
