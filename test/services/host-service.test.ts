import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newId } from '../../src/core/ids.js';
import { ALL, MiB, expectRefusedChangingNothing, openServiceWorld, type ServiceWorld } from './services-kit.js';

/** HostService's rules on a real store: registration, the validation every host passes, deletion only without grants. */
describe('HostService (service tier)', () => {
  let w: ServiceWorld;
  beforeEach(async () => { w = await openServiceWorld(); });
  afterEach(async () => { await w.close(); });

  it('registers a host as unknown (no agent has reported) and journals it as a succeeded operation with an event', async () => {
    const h = await w.cp.hosts.create({ name: 'hv-a', addresses: ['10.99.211.2', 'fd00::2'], initiatorName: 'iqn.2024-01.com.example:hv-a', zone: 'az1' }, 'test', w.ctx.tenantId);
    expect(h).toMatchObject({ name: 'hv-a', state: 'unknown', addresses: ['10.99.211.2', 'fd00::2'], zone: 'az1', agentHeartbeatAt: null });
    expect(await w.cp.hosts.get('hv-a')).toEqual(h);
    const ops = await w.store.db.selectFrom('operations').select(['kind', 'state', 'target_id']).execute();
    expect(ops).toEqual([{ kind: 'host.create', state: 'succeeded', target_id: h.id }]);
    const events = await w.store.db.selectFrom('events').select(['resource_id', 'action']).where('resource_type', '=', 'host').execute();
    expect(events).toEqual([{ resource_id: h.id, action: 'create' }]);
  });

  it('refuses invalid names, addresses, initiator names and zones, and a taken name, changing nothing', async () => {
    await w.cp.hosts.create({ name: 'taken' }, 'test', w.ctx.tenantId);
    const create = (input: Parameters<ServiceWorld['cp']['hosts']['create']>[0]) => () => w.cp.hosts.create(input, 'test', w.ctx.tenantId);
    await expectRefusedChangingNothing(w, [
      ['INVALID_NAME', create({ name: 'Bad Name' })],
      ['INVALID_NAME', create({ name: newId('host') })],
      ['VALIDATION_FAILED', create({ name: 'h1', addresses: ['not-an-ip;rm -rf /'] })],
      ['VALIDATION_FAILED', create({ name: 'h1', addresses: ['10.99.211.2', '999.1.1.1'] })],
      ['VALIDATION_FAILED', create({ name: 'h1', initiatorName: 'iqn.bogus;reboot' })],
      ['INVALID_NAME', create({ name: 'h1', zone: 'no such zone!' })],
      ['NAME_TAKEN', create({ name: 'taken' })],
      ['VALIDATION_FAILED', () => w.cp.hosts.update('taken', { addresses: ['nope'] }, 'test')],
      ['HOST_NOT_FOUND', () => w.cp.hosts.update('absent', { zone: 'az1' }, 'test')],
      ['HOST_NOT_FOUND', () => w.cp.hosts.delete('absent', 'test')],
    ]);
  });

  it('refuses to delete a host that still holds a grant, and deletes it once revoked', async () => {
    await w.addDirBackend('b1');
    await w.finish((await w.cp.volumes.create({ name: 'vol', sizeBytes: MiB }, w.ctx)).operation);
    await w.cp.hosts.create({ name: 'hv-a', addresses: ['10.99.211.2'] }, 'test', w.ctx.tenantId);
    await w.finish((await w.cp.access.grant('vol', 'hv-a', 'rw', w.ctx)).operation);
    await expectRefusedChangingNothing(w, [['HOST_IN_USE', () => w.cp.hosts.delete('hv-a', 'test')]]);
    await w.finish((await w.cp.access.revoke('vol', 'hv-a', w.ctx)).operation);
    await w.cp.hosts.delete('hv-a', 'test');
    expect((await w.cp.hosts.list(ALL)).items).toEqual([]);
  });
});
