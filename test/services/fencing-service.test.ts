import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Attachment } from '../../src/core/schemas/attachment-schema.js';
import { ALL, MiB, expectRefusedChangingNothing, openServiceWorld, pollUntil, type ServiceWorld } from './services-kit.js';

/**
 * FencingService and the rule it exists for, on a real store and a real dir backend: a volume
 * attached read-write to a host that went silent may not be attached elsewhere until that host is
 * fenced; the fence revokes its grants and cuts its attachments, and then the volume may move.
 * The test plays the agent through AttachmentService.report, as test/attachments does over HTTP.
 */
describe('FencingService (service tier)', () => {
  let w: ServiceWorld;
  const report = (host: string, ip: string, connected: { volumeId: string; instance: string; deviceId: string }[] = []) =>
    w.cp.attachments.report(host, { addresses: [ip], connectors: ['file'], instances: ['vm1'], connected }, 'agent', w.ctx.tenantId);

  beforeEach(async () => {
    w = await openServiceWorld();
    await w.addDirBackend('b1');
    await w.finish((await w.cp.volumes.create({ name: 'vol', sizeBytes: 4 * MiB }, w.ctx)).operation);
    for (const [name, ip] of [['hv-a', '10.99.213.2'], ['hv-b', '10.99.213.3']] as const) {
      await w.cp.hosts.create({ name, addresses: [ip] }, 'test', w.ctx.tenantId);
      await report(name, ip);
    }
  });
  afterEach(async () => { await w.close(); });

  it('keeps a silent host\'s read-write volume until the host is fenced, then lets it attach elsewhere', async () => {
    const { attachment, operation } = await w.cp.attachments.attach({ volume: 'vol', host: 'hv-a', instance: 'vm1', mode: 'rw' }, w.ctx);
    // The agent on hv-a connects what it is told to, and the attach finishes.
    const desired = await pollUntil('hv-a told to connect vol', async () => {
      const a = await report('hv-a', '10.99.213.2');
      return a.desired.length > 0 ? a.desired : undefined;
    });
    await report('hv-a', '10.99.213.2', desired.map((d) => ({ volumeId: d.volumeId, instance: d.instance, deviceId: `dev-${d.volumeId}` })));
    expect((await w.finish(operation)).state).toBe('succeeded');
    const attached = async (): Promise<Attachment[]> => (await w.cp.attachments.list(w.ctx.tenantId, { volume: 'vol' }, ALL)).items;
    expect((await attached()).map((a) => `${a.hostName}:${a.state}`)).toEqual(['hv-a:attached']);

    // hv-a's agent went silent (its last heartbeat is an hour old): not up, and not fenced either.
    await w.store.db.updateTable('hosts').set({ agent_heartbeat_at: new Date(Date.now() - 3_600_000).toISOString() }).where('name', '=', 'hv-a').execute();
    await expectRefusedChangingNothing(w, [['HOST_NOT_FENCED', () => w.cp.attachments.attach({ volume: 'vol', host: 'hv-b', instance: 'vm1', mode: 'rw' }, w.ctx)]]);

    const fence = await w.cp.fencing.fence('hv-a', w.ctx);
    expect((await w.finish(fence)).state).toBe('succeeded');
    expect((await w.cp.hosts.get('hv-a')).state).toBe('fenced');
    expect(await w.cp.access.listForVolume('vol', w.ctx.tenantId)).toEqual([]);
    expect(await attached()).toEqual([]);
    expect((await w.cp.attachments.list(w.ctx.tenantId, { volume: 'vol', all: true }, ALL)).items.find((a) => a.id === attachment.id)?.state).toBe('gone');

    // Held, so the new attach stays as submitted while the last refusal is compared.
    await w.holdWorkers();
    const moved = await w.cp.attachments.attach({ volume: 'vol', host: 'hv-b', instance: 'vm1', mode: 'rw' }, w.ctx);
    expect(moved.attachment).toMatchObject({ hostName: 'hv-b', state: 'granting' });
    // A fenced host gets nothing back until it is unfenced.
    await expectRefusedChangingNothing(w, [['INVALID_STATE', () => w.cp.access.grant('vol', 'hv-a', 'ro', w.ctx)]]);
  });
});
