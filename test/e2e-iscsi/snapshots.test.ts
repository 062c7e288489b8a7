import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError } from '../api/api-kit.js';
import { startLab, type Lab, type LabHost } from '../lab/lab.js';
import {
  MiB, createVolume, ensureDir, grant, readCapacity, readsPattern, registerBackend, registerLabHosts, revoke, startE2eServer, tgtUri,
  writeAndVerify, type E2eServer, type VolumeView,
} from './e2e-kit.js';

interface SnapshotView { id: string; name: string; state: string; method: string | null; volumeName: string | null; sizeBytes: number }
interface OperationView { kind: string; state: string; stepsDone: { name: string; note?: string }[] }

/**
 * Snapshots, revert and clones through the API on tgt backends (btrfs subvolume snapshots, and
 * reflinks on XFS), checked by reading the data over iSCSI from a namespace host.
 */
describe('snapshots, revert and clones over iSCSI on tgt backends', () => {
  let lab: Lab;
  let s: E2eServer;
  let h1: LabHost;
  let h2: LabHost;

  beforeAll(async () => {
    lab = await startLab({ hosts: 3, tgtd: true, btrfs: true, xfs: true });
    [h1, h2] = [lab.host('h1'), lab.host('h2')];
    // Reconcile every second so exports of clones settle quickly; the reconciler on its shipped interval: test/defaults/tgtd-restart.ts.
    s = await startE2eServer({ reconcileIntervalMs: 1000 });
    await registerLabHosts(s.api, lab);
    await registerBackend(s.api, 'san-btrfs', tgtUri(lab, `btrfs://${lab.btrfsDir}/pool`));
    await registerBackend(s.api, 'san-xfs', tgtUri(lab, `dir://${ensureDir(`${lab.xfsDir}/luns`)}`));
  });

  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      await lab?.stop();
    }
  });

  for (const [backend, method] of [['san-btrfs', 'btrfs-snapshot'], ['san-xfs', 'reflink']] as const) {
    it(`${backend}: a snapshot keeps the data; after revert, what was written after the snapshot is gone when read over iSCSI`, async () => {
      const vol = `rv-${backend}`;
      await createVolume(s.api, vol, 32 * MiB, backend);
      const before = await grant(s.api, vol, 'h1');
      await writeAndVerify(lab, h1, before, 0x11, 0, 256 * 1024);

      const snap = await s.api.ok<{ snapshot: SnapshotView }>('POST', '/v1/snapshots?wait=true', 200, { body: { volume: vol, name: `s1-${backend}` } });
      expect(snap.snapshot).toMatchObject({ state: 'available', volumeName: vol, sizeBytes: 32 * MiB, method });

      // Written after the snapshot: over the snapshotted range and somewhere new.
      await writeAndVerify(lab, h1, before, 0x22, 0, 64 * 1024);
      await writeAndVerify(lab, h1, before, 0x33, 8 * MiB, 64 * 1024);

      // Revert is refused while a host has access; revoke first.
      expectError(await s.api.request('POST', `/v1/volumes/${vol}/revert?wait=true`, { body: { snapshot: `s1-${backend}` } }), 409, 'VOLUME_IN_USE');
      await revoke(s.api, vol, 'h1');
      const r = await s.api.ok<{ volume: VolumeView; operation: OperationView }>('POST', `/v1/volumes/${vol}/revert?wait=true`, 200, { body: { snapshot: `s1-${backend}` } });
      expect(r.volume.state).toBe('available');
      expect(r.operation).toMatchObject({ kind: 'volume.revert', state: 'succeeded' });

      const after = await grant(s.api, vol, 'h1');
      expect((await readCapacity(lab, h1, after)).stdout.trim()).toBe(String(32 * MiB));
      expect(await readsPattern(lab, h1, after, 0x11, 0, 256 * 1024)).toBe(true);
      expect(await readsPattern(lab, h1, after, 0x0, 8 * MiB, 64 * 1024)).toBe(true);
      expect(await readsPattern(lab, h1, after, 0x22, 0, 64 * 1024)).toBe(false);
      await revoke(s.api, vol, 'h1');

      // The snapshot itself can be deleted afterwards, and the volume keeps its data.
      await s.api.ok('DELETE', `/v1/snapshots/s1-${backend}?wait=true`, 200);
      const again = await grant(s.api, vol, 'h1', 'ro');
      expect(await readsPattern(lab, h1, again, 0x11, 0, 256 * 1024)).toBe(true);
      await revoke(s.api, vol, 'h1');
    });
  }

  it('clones from a snapshot and from a volume hold the source\'s data', async () => {
    // Clones are a shipped feature: if the API stops offering them, that is a failure, not a skip.
    const doc = await s.api.ok<{ components?: { schemas?: Record<string, unknown> }; paths: Record<string, Record<string, unknown>> }>('GET', '/openapi.json', 200, { token: null });
    const createBody = JSON.stringify(doc.paths['/v1/volumes']?.post ?? {});
    expect(createBody).toContain('fromSnapshot');
    expect(createBody).toContain('fromVolume');
    await createVolume(s.api, 'src', 16 * MiB, 'san-btrfs');
    const w = await grant(s.api, 'src', 'h1');
    await writeAndVerify(lab, h1, w, 0x5a, 0, 128 * 1024);
    await s.api.ok('POST', '/v1/snapshots?wait=true', 200, { body: { volume: 'src', name: 'src-s1' } });
    await writeAndVerify(lab, h1, w, 0x6b, 0, 64 * 1024);
    await revoke(s.api, 'src', 'h1');

    const fromSnap = await s.api.ok<{ volume: VolumeView }>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'clone-snap', sizeBytes: 16 * MiB, fromSnapshot: 'src-s1' } });
    expect(fromSnap.volume).toMatchObject({ state: 'available', backendName: 'san-btrfs' });
    const cs = await grant(s.api, 'clone-snap', 'h2');
    expect(await readsPattern(lab, h2, cs, 0x5a, 0, 128 * 1024)).toBe(true);
    // The clone is its own volume: writing it leaves the source alone.
    await writeAndVerify(lab, h2, cs, 0x7c, 0, 64 * 1024);

    const fromVol = await s.api.ok<{ volume: VolumeView }>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'clone-vol', sizeBytes: 16 * MiB, fromVolume: 'src' } });
    expect(fromVol.volume.state).toBe('available');
    const cv = await grant(s.api, 'clone-vol', 'h1');
    expect(await readsPattern(lab, h1, cv, 0x6b, 0, 64 * 1024)).toBe(true);
    expect(await readsPattern(lab, h1, cv, 0x5a, 64 * 1024, 64 * 1024)).toBe(true);
    // The source still holds its own data after the clones were written.
    const sr = await grant(s.api, 'src', 'h2', 'ro');
    expect(await readsPattern(lab, h2, sr, 0x6b, 0, 64 * 1024)).toBe(true);
  });
});
