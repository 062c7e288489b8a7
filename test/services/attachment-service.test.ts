import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ALL, MiB, expectRefusedChangingNothing, openServiceWorld, type ServiceWorld } from './services-kit.js';

/**
 * AttachmentService's rules at submit, on a real store and a real dir backend, with the workers
 * held so every attachment stays as submitted: a read-write volume is attached to one host at a
 * time, read-only attachments may be shared, a
 * multi-attach volume may be attached read-write on several hosts, and refusals change nothing.
 * The attach flow through a reporting agent is covered by test/attachments and the lab tiers.
 */
describe('AttachmentService (service tier)', () => {
  let w: ServiceWorld;

  beforeEach(async () => {
    w = await openServiceWorld();
    await w.addDirBackend('b1', { capabilityOverrides: { add: ['multiattach'], remove: [] } });
    await w.finish((await w.cp.volumes.create({ name: 'vol', sizeBytes: 4 * MiB }, w.ctx)).operation);
    await w.finish((await w.cp.volumes.create({ name: 'shared', sizeBytes: 4 * MiB, multiattach: true }, w.ctx)).operation);
    for (const [name, ip] of [['hv-a', '10.99.212.2'], ['hv-b', '10.99.212.3']] as const) await w.cp.hosts.create({ name, addresses: [ip] }, 'test', w.ctx.tenantId);
    await w.holdWorkers();
  });
  afterEach(async () => { await w.close(); });

  const attach = (volume: string, host: string, mode: 'rw' | 'ro', instance = 'vm1') => w.cp.attachments.attach({ volume, host, instance, mode }, w.ctx);

  it('attaches a read-write volume to one host at a time', async () => {
    const first = await attach('vol', 'hv-a', 'rw');
    expect(first.attachment).toMatchObject({ state: 'granting', hostName: 'hv-a', mode: 'rw' });
    await expectRefusedChangingNothing(w, [
      ['VOLUME_IN_USE', () => attach('vol', 'hv-b', 'rw')],
      ['VOLUME_IN_USE', () => attach('vol', 'hv-b', 'ro')],
      ['VOLUME_IN_USE', () => attach('vol', 'hv-a', 'rw', 'vm2')],
    ]);
  });

  // AccessService.grant once checked only other grants, and an attach still `granting` has none yet.
  it('refuses a read-write grant to another host while a read-write attachment is still granting', async () => {
    await attach('vol', 'hv-a', 'rw');
    await expectRefusedChangingNothing(w, [['VOLUME_IN_USE', () => w.cp.access.grant('vol', 'hv-b', 'rw', w.ctx)]]);
  });

  it('returns the live attachment when asked again, and refuses another mode for it', async () => {
    const first = await attach('vol', 'hv-a', 'rw');
    const again = await attach('vol', 'hv-a', 'rw');
    expect(again.attachment.id).toBe(first.attachment.id);
    expect(again.operation.id).toBe(first.operation.id);
    await expectRefusedChangingNothing(w, [['INVALID_STATE', () => attach('vol', 'hv-a', 'ro')]]);
  });

  it('shares read-only attachments between hosts, and then refuses a read-write one', async () => {
    await attach('vol', 'hv-a', 'ro');
    await attach('vol', 'hv-b', 'ro');
    expect((await w.cp.attachments.list(w.ctx.tenantId, { volume: 'vol' }, ALL)).items.map((a) => `${a.hostName}:${a.mode}`).sort()).toEqual(['hv-a:ro', 'hv-b:ro']);
    await expectRefusedChangingNothing(w, [['VOLUME_IN_USE', () => attach('vol', 'hv-b', 'rw', 'vm2')]]);
  });

  it('lets a multi-attach volume be attached read-write on several hosts', async () => {
    await attach('shared', 'hv-a', 'rw');
    await attach('shared', 'hv-b', 'rw');
    expect((await w.cp.attachments.list(w.ctx.tenantId, { volume: 'shared' }, ALL)).items.map((a) => `${a.hostName}:${a.mode}`).sort()).toEqual(['hv-a:rw', 'hv-b:rw']);
  });

  it('refuses bad instance names, unknown volumes and hosts, and agent reports from unregistered or invalid hosts, changing nothing', async () => {
    const report = { addresses: ['10.99.212.2'], connectors: ['file'], instances: ['vm1'], connected: [] };
    await expectRefusedChangingNothing(w, [
      ['INVALID_NAME', () => attach('vol', 'hv-a', 'rw', 'Bad Instance')],
      ['VOLUME_NOT_FOUND', () => attach('nothing', 'hv-a', 'rw')],
      ['HOST_NOT_FOUND', () => attach('vol', 'nobody', 'rw')],
      ['HOST_NOT_FOUND', () => w.cp.attachments.report('stranger', report, 'agent', w.ctx.tenantId)],
      ['VALIDATION_FAILED', () => w.cp.attachments.report('hv-a', { ...report, addresses: ['not-an-ip;rm -rf /'] }, 'agent', w.ctx.tenantId)],
      ['VALIDATION_FAILED', () => w.cp.attachments.report('hv-a', { ...report, initiatorName: 'iqn.bogus;reboot' }, 'agent', w.ctx.tenantId)],
    ]);
  });
});
