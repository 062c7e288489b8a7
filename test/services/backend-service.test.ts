import { mkdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newId } from '../../src/core/ids.js';
import { MiB, expectCode, expectRefusedChangingNothing, openServiceWorld, type ServiceWorld } from './services-kit.js';

/**
 * BackendService's registration rules on a real store with real dir backends: a probe at
 * registration, one directory per backend, validated numbers and names, no deleting a backend that
 * holds volumes; every refusal changes no row and creates no directory or file.
 */
describe('BackendService (service tier)', () => {
  let w: ServiceWorld;
  let b1: string;

  beforeEach(async () => {
    w = await openServiceWorld();
    b1 = (await w.addDirBackend('b1')).dir;
  });
  afterEach(async () => { await w.close(); });

  it('probes a dir backend at registration: enabled, with capacity and capabilities, journaled as an operation', async () => {
    const b = await w.cp.backends.get('b1');
    expect(b).toMatchObject({ name: 'b1', driver: `dir://${b1}`, kind: 'block', state: 'enabled' });
    expect(b.capacity.totalBytes).toBeGreaterThan(0);
    expect(b.capabilities).toEqual(expect.arrayContaining(['snapshot']));
    const ops = await w.store.db.selectFrom('operations').select(['kind', 'state']).execute();
    expect(ops).toEqual([{ kind: 'backend.create', state: 'succeeded' }]);
  });

  it('refuses an overlapping directory, a taken name, bad names, numbers and URIs, changing nothing', async () => {
    const other = join(w.scratchDir, 'other');
    mkdirSync(other);
    const create = (name: string, driver: string, extra: Record<string, unknown> = {}) => () => w.cp.backends.create({ name, driver, ...extra }, 'test');
    await expectRefusedChangingNothing(w, [
      ['BACKEND_PATH_OVERLAP', create('twin', `dir://${b1}`)],
      ['BACKEND_PATH_OVERLAP', create('twin', `dir://${b1}/inner`)],
      ['BACKEND_PATH_OVERLAP', create('twin', `dir://${w.scratchDir}`)],
      ['BACKEND_PATH_OVERLAP', create('twin', `dir://${w.config.dataDir}/vols`)],
      ['NAME_TAKEN', create('b1', `dir://${other}`)],
      ['INVALID_NAME', create('Bad Name', `dir://${other}`)],
      ['INVALID_NAME', create(newId('backend'), `dir://${other}`)],
      ['INVALID_DRIVER_URI', create('x', 'dir:///etc/../..')],
      ['VALIDATION_FAILED', create('x', `dir://${other}`, { overcommitRatio: -1 })],
      ['VALIDATION_FAILED', create('x', `dir://${other}`, { reservedPercent: 101 })],
    ]);
  });

  it('refuses to delete a backend that holds a volume, and deletes it once the volume is gone', async () => {
    const { operation } = await w.cp.volumes.create({ name: 'v', sizeBytes: MiB, backend: 'b1' }, w.ctx);
    await w.finish(operation);
    await expectRefusedChangingNothing(w, [['BACKEND_IN_USE', () => w.cp.backends.delete('b1', 'test')]]);
    await w.finish((await w.cp.volumes.delete('v', w.ctx)).operation);
    await w.cp.backends.delete('b1', 'test');
    await expectCode(w.cp.backends.get('b1'), 'BACKEND_NOT_FOUND');
  });

  it('reprobes the backends sharing a filesystem in coalesced background passes, not once per registration each', async () => {
    const n = 30;
    for (let i = 2; i <= n; i++) {
      const { backend } = await w.addDirBackend(`b${i}`);
      // Its own share is right when the request returns (b1 and itself at least).
      expect(backend.capacity.totalBytes).toBeLessThanOrEqual(Math.floor(statfsSync(w.scratchDir).blocks * statfsSync(w.scratchDir).bsize / 2));
    }
    await w.cp.backends.sharersReprobed();
    const fs = statfsSync(w.scratchDir);
    const names = Array.from({ length: n }, (_, i) => `b${i + 1}`);
    let probes = 0;
    for (const name of names) {
      const b = await w.cp.backends.detail(name);
      expect(b.capacity.totalBytes, name).toBe(Math.floor((fs.blocks * fs.bsize) / n));
      probes += b.probe.seq;
    }
    // Reprobing every sharer after each registration, as the request did, was n(n-1)/2 probes besides the n own ones.
    expect(probes).toBeLessThan(n + (n * (n - 1)) / 4);
  });

  it('reprobes only the sharers whose share changed: not the backend just registered, whose probe already counted it', async () => {
    const b1Before = (await w.cp.backends.detail('b1')).probe.seq;
    await w.addDirBackend('b2');
    const b2Before = (await w.cp.backends.detail('b2')).probe.seq;
    await w.cp.backends.sharersReprobed();
    const fs = statfsSync(w.scratchDir);
    const [d1, d2] = [await w.cp.backends.detail('b1'), await w.cp.backends.detail('b2')];
    expect(d1.probe.seq).toBeGreaterThan(b1Before);
    expect(d2.probe.seq).toBe(b2Before);
    for (const d of [d1, d2]) expect(d.capacity.totalBytes, d.name).toBe(Math.floor((fs.blocks * fs.bsize) / 2));
  });
});
