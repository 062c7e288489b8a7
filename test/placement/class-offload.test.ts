import { mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, type Lab } from '../lab/lab.js';
import { startInjectServer, type InjectServer } from '../helpers/inject.js';

interface Answer { volume: { state: string }; operation: { stepsDone: { name: string; note?: string }[] } }
const MiB = 1024 * 1024;

/** A storage class can say clones are copied on the host even where the backend could offload. */
describe('class offload: false forces host copies (dir backend on reflink XFS)', () => {
  let lab: Lab;
  let s: InjectServer;

  beforeAll(async () => {
    lab = await startLab({ hosts: 0, tgtd: false, btrfs: false, xfs: true });
    s = await startInjectServer({ defaultBackend: false });
    mkdirSync(`${lab.xfsDir}/vols`, { recursive: true });
    await s.api.ok('POST', '/v1/backends', 201, { body: { name: 'xfs', driver: `dir://${lab.xfsDir}/vols` } });
    await s.api.ok('POST', '/v1/classes', 201, { body: { name: 'independent', offload: false } });
    await s.api.ok('POST', '/v1/volumes?wait=true', 200, { body: { name: 'src', sizeBytes: 16 * MiB } });
  });
  afterAll(async () => {
    await s.close();
    await lab.stop();
  });

  const note = (a: Answer): string => a.operation.stepsDone.find((x) => x.name === 'provision')?.note ?? '';

  it('offloads a clone when the class allows it, and copies on the host when it does not', async () => {
    const backend = await s.api.ok<{ capabilities: string[] }>('GET', '/v1/backends/xfs', 200);
    expect(backend.capabilities).toContain('clone.offload');
    const offloaded = await s.api.ok<Answer>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'fast-clone', fromVolume: 'src' } });
    expect(note(offloaded)).toMatch(/^offloaded clone .*reflink/);
    const copied = await s.api.ok<Answer>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'own-clone', fromVolume: 'src', class: 'independent' } });
    expect(copied.volume.state).toBe('available');
    expect(note(copied)).toMatch(/^host copy \(qemu-img convert\)/);
    const cls = await s.api.ok<{ offload: boolean }>('GET', '/v1/classes/independent', 200);
    expect(cls.offload).toBe(false);
  });
});
