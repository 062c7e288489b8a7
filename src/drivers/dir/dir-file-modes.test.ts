import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { newId } from '../../core/ids.js';
import type { VolumeFormat } from '../../core/states.js';
import { SpawnCommandRunner } from '../../system/command-runner.js';
import { TEST_UMASKS, notPrivate, withUmask } from '../../../test/helpers/file-modes.js';
import { startLab, type Lab } from '../../../test/lab/lab.js';
import { DirDriver } from './dir-driver.js';

// Every image the dir driver writes is 0600, whichever tool made it (node, qemu-img create/convert,
// cp --reflink) and whatever the umask: the tools choose their own modes for files they create.
const runner = new SpawnCommandRunner();
const sig = (): AbortSignal => new AbortController().signal;
const MiB = 1024 * 1024;
const isRoot = process.getuid?.() === 0;

let labPromise: Promise<Lab> | undefined;
const lab = (): Promise<Lab> => (labPromise ??= startLab({ hosts: 0, tgtd: false, btrfs: false, xfs: true, xfsSizeBytes: 512 * MiB, runner }));
afterAll(async () => {
  if (labPromise) await (await labPromise).stop();
});

/** Creates, snapshots, clones (from the snapshot and from the volume), grows and reverts in `format`; returns the copy methods used. */
async function exercise(dir: string, format: VolumeFormat): Promise<string[]> {
  const driver = new DirDriver({ dir, defaultFormat: format }, runner);
  const vol = await driver.createVolume({ id: newId('volume'), name: 'v', sizeBytes: 4 * MiB }, sig());
  const snap = await driver.snapshots.create(vol, newId('snapshot'), sig());
  const fromSnap = await driver.clones.clone(snap, { id: newId('volume'), name: 'c1', sizeBytes: 8 * MiB }, sig());
  const fromVol = await driver.clones.clone(vol, { id: newId('volume'), name: 'c2', sizeBytes: 4 * MiB }, sig());
  const otherFormat = await driver.clones.clone(vol, { id: newId('volume'), name: 'c3', sizeBytes: 4 * MiB, format: format === 'raw' ? 'qcow2' : 'raw' }, sig());
  await driver.resizeVolume(vol, 6 * MiB, sig());
  await driver.revert.revert(vol, snap, sig());
  return [snap, fromSnap, fromVol, otherFormat].map((h) => (typeof h.method === 'string' ? h.method : 'created'));
}

describe('dir driver file modes', () => {
  for (const mask of TEST_UMASKS) {
    for (const format of ['raw', 'qcow2'] as const) {
      it(`keeps every ${format} image 0600 under umask ${mask.toString(8).padStart(3, '0')} (qemu-img copies and overlays)`, async () => {
        const dir = await mkdtemp(join(tmpdir(), `stowage-modes-${String(process.pid)}-`));
        try {
          const methods = await withUmask(mask, () => exercise(dir, format));
          expect(methods).toEqual(expect.arrayContaining([format === 'qcow2' ? 'qcow2-backing' : 'copy']));
          expect(await notPrivate(dir)).toEqual([]);
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      });
    }

    it.skipIf(!isRoot)(`keeps cp --reflink copies 0600 under umask ${mask.toString(8).padStart(3, '0')} (XFS reflink=1)`, async () => {
      const dir = await mkdtemp(join((await lab()).xfsDir, 'modes-'));
      try {
        const methods = await withUmask(mask, () => exercise(dir, 'raw'));
        expect(methods).toContain('reflink');
        expect(await notPrivate(dir)).toEqual([]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
