import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MiB, expectCode, expectRefusedChangingNothing, openServiceWorld, type ServiceWorld } from './services-kit.js';

/**
 * AccessService's exclusivity rule on a real store and a real dir backend (file access): a
 * read-write grant excludes every other host, read-only grants may be shared, repeating a grant
 * returns the live one, and every refusal changes nothing.
 */
describe('AccessService (service tier)', () => {
  let w: ServiceWorld;

  beforeEach(async () => {
    w = await openServiceWorld();
    await w.addDirBackend('b1');
    await w.finish((await w.cp.volumes.create({ name: 'vol', sizeBytes: 4 * MiB }, w.ctx)).operation);
    for (const [name, ip] of [['hv-a', '10.99.210.2'], ['hv-b', '10.99.210.3'], ['hv-c', '10.99.210.4']] as const) {
      await w.cp.hosts.create({ name, addresses: [ip] }, 'test', w.ctx.tenantId);
    }
  });
  afterEach(async () => { await w.close(); });

  const granted = async (host: string, mode: 'rw' | 'ro'): Promise<void> => {
    const { grant, operation } = await w.cp.access.grant('vol', host, mode, w.ctx);
    expect(grant).toMatchObject({ hostName: host, mode, state: 'granting' });
    expect((await w.finish(operation)).state).toBe('succeeded');
  };
  const live = async (): Promise<string[]> => (await w.cp.access.listForVolume('vol', w.ctx.tenantId)).map((g) => `${g.hostName}:${g.mode}:${g.state}`).sort();

  it('a read-write grant excludes every other host, read-write or read-only, and the refusal changes nothing', async () => {
    await granted('hv-a', 'rw');
    expect(await live()).toEqual(['hv-a:rw:active']);
    await expectRefusedChangingNothing(w, [
      ['VOLUME_IN_USE', () => w.cp.access.grant('vol', 'hv-b', 'rw', w.ctx)],
      ['VOLUME_IN_USE', () => w.cp.access.grant('vol', 'hv-b', 'ro', w.ctx)],
    ]);
    const e = await expectCode(w.cp.access.grant('vol', 'hv-b', 'rw', w.ctx), 'VOLUME_IN_USE');
    expect(e.details).toMatchObject({ host: 'hv-a', mode: 'rw' });
  });

  it('shares read-only grants between hosts, and then refuses a read-write one', async () => {
    await granted('hv-a', 'ro');
    await granted('hv-b', 'ro');
    expect(await live()).toEqual(['hv-a:ro:active', 'hv-b:ro:active']);
    await expectRefusedChangingNothing(w, [['VOLUME_IN_USE', () => w.cp.access.grant('vol', 'hv-c', 'rw', w.ctx)]]);
  });

  it('returns the live grant when it is asked for again, and refuses another mode until it is revoked', async () => {
    const first = await w.cp.access.grant('vol', 'hv-a', 'rw', w.ctx);
    await w.finish(first.operation);
    const again = await w.cp.access.grant('vol', 'hv-a', 'rw', w.ctx);
    expect(again.grant).toMatchObject({ id: first.grant.id, state: 'active' });
    expect(again.operation.id).toBe(first.operation.id);
    await expectRefusedChangingNothing(w, [['INVALID_STATE', () => w.cp.access.grant('vol', 'hv-a', 'ro', w.ctx)]]);
  });

  it('lets another host take read-write access once the first is revoked', async () => {
    await granted('hv-a', 'rw');
    const { operation } = await w.cp.access.revoke('vol', 'hv-a', w.ctx);
    expect((await w.finish(operation)).state).toBe('succeeded');
    expect(await live()).toEqual([]);
    await granted('hv-b', 'rw');
    expect(await live()).toEqual(['hv-b:rw:active']);
  });

  it('refuses grants to unknown hosts or volumes, to a volume that is not available, and revokes of no grant', async () => {
    // Held in `creating`: no worker may run its create while the refusals are compared.
    await w.holdWorkers();
    const busy = await w.cp.volumes.create({ name: 'busy', sizeBytes: MiB }, w.ctx);
    await expectRefusedChangingNothing(w, [
      ['HOST_NOT_FOUND', () => w.cp.access.grant('vol', 'nobody', 'rw', w.ctx)],
      ['VOLUME_NOT_FOUND', () => w.cp.access.grant('nothing', 'hv-a', 'rw', w.ctx)],
      ['INVALID_STATE', () => w.cp.access.grant('busy', 'hv-a', 'rw', w.ctx)],
      ['NOT_FOUND', () => w.cp.access.revoke('vol', 'hv-a', w.ctx)],
    ]);
    await w.finish(busy.operation);
  });
});
