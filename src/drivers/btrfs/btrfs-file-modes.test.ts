import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../core/ids.js';
import { SpawnCommandRunner } from '../../system/command-runner.js';
import { TEST_UMASKS, notPrivate, withUmask } from '../../../test/helpers/file-modes.js';
import { startLab, type Lab } from '../../../test/lab/lab.js';
import { BtrfsDriver, parseBtrfsOptions } from './btrfs-driver.js';

// Lab tier (root: a btrfs loop mount). Subvolumes are 0700 and disk.raw 0600 whatever the umask:
// `btrfs subvolume create`, `truncate` and `cp` would otherwise pick 0755/0644 minus the umask.
const runner = new SpawnCommandRunner();
const signal = new AbortController().signal;
const MiB = 1024 * 1024;

describe('btrfs driver file modes', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ hosts: 0, tgtd: false, btrfs: true, xfs: false, btrfsSizeBytes: 1024 * MiB });
  });
  afterAll(async () => {
    await lab.stop();
  });

  for (const mask of TEST_UMASKS) {
    it(`keeps volumes, snapshots, clones and reverted disks private under umask ${mask.toString(8).padStart(3, '0')}`, async () => {
      const dir = `${lab.btrfsDir}/modes-${mask.toString(8)}`;
      await withUmask(mask, async () => {
        const driver = new BtrfsDriver(parseBtrfsOptions(new URL(`btrfs://${dir}`), {}), runner);
        await driver.probe(signal);
        const vol = await driver.createVolume({ id: newId('volume'), name: 'v', sizeBytes: 4 * MiB }, signal);
        const snap = await driver.snapshots.create(vol, newId('snapshot'), signal);
        await driver.clones.clone(snap, { id: newId('volume'), name: 'c1', sizeBytes: 8 * MiB }, signal);
        await driver.clones.clone(vol, { id: newId('volume'), name: 'c2', sizeBytes: 4 * MiB }, signal);
        await driver.resizeVolume(vol, 6 * MiB, signal);
        await driver.revert.revert(vol, snap, signal);
      });
      expect(await notPrivate(dir)).toEqual([]);
    });
  }
});
