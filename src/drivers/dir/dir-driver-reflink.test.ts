import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { newId } from '../../core/ids.js';
import { VOLUME_FORMATS } from '../../core/states.js';
import { SpawnCommandRunner } from '../../system/command-runner.js';
import { startLab, type Lab } from '../../../test/lab/lab.js';
import { describeBlockDriverConformance, qemuIoDataAccess } from '../../../test/drivers/conformance.js';
import { DirDriver } from './dir-driver.js';

// Lab tier: an XFS with reflink=1 on a loop device (needs root for losetup/mount).
const isRoot = process.getuid?.() === 0;
const runner = new SpawnCommandRunner();
const sig = (): AbortSignal => new AbortController().signal;

let labPromise: Promise<Lab> | undefined;
const lab = (): Promise<Lab> => (labPromise ??= startLab({ hosts: 0, tgtd: false, btrfs: false, xfs: true, xfsSizeBytes: 512 * 1024 * 1024, runner }));
afterAll(async () => {
  if (labPromise) await (await labPromise).stop();
});

async function xfsDriver(format: 'raw' | 'qcow2'): Promise<{ driver: DirDriver; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join((await lab()).xfsDir, `dir-${format}-`));
  return { driver: new DirDriver({ dir, defaultFormat: format }, runner), cleanup: () => rm(dir, { recursive: true, force: true }) };
}

// Not root: the suites are still registered, so they count as skipped (with this reason) instead of vanishing.
describe.skipIf(!isRoot)('conformance on XFS reflink (needs root for losetup and mount)', () => {
  for (const format of VOLUME_FORMATS) {
    describeBlockDriverConformance(`dir, ${format}, XFS reflink=1 on a loop device`, async () => {
      const subject = await xfsDriver(format);
      return { ...subject, data: qemuIoDataAccess(subject.driver, runner) };
    }, { claims: ['snapshot', 'clone', 'revert'] });
  }
});

describe.skipIf(!isRoot)('dir driver on a reflink filesystem', () => {
  it('detects reflink and offloads snapshots and clones to it (extents are shared, not copied)', async () => {
    const { driver, cleanup } = await xfsDriver('raw');
    try {
      const report = await driver.probe(sig());
      expect(report.info).toMatchObject({ filesystem: 'xfs', reflink: 'yes' });
      expect(report.capabilities).toEqual(expect.arrayContaining(['snapshot', 'snapshot.offload', 'clone', 'clone.offload', 'format.qcow2']));

      const vol = await driver.createVolume({ id: newId('volume'), name: 'v', sizeBytes: 8 * 1024 * 1024 }, sig());
      await runner.run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x61 0 4M', driver.data.locate(vol).path], { timeoutMs: 60_000 });
      await runner.run('sync', [], { timeoutMs: 60_000 });
      const snap = await driver.snapshots.create(vol, newId('snapshot'), sig());
      expect(snap).toMatchObject({ method: 'reflink', format: 'raw' });
      const clone = await driver.clones.clone(snap, { id: newId('volume'), name: 'c', sizeBytes: 8 * 1024 * 1024 }, sig());
      expect(clone).toMatchObject({ method: 'reflink' });

      // filefrag marks extents that are shared with another file: proof the data was not copied.
      const { stdout } = await runner.run('filefrag', ['-v', driver.data.locate(clone).path], { timeoutMs: 30_000 });
      expect(stdout).toMatch(/shared/);
      await driver.snapshots.delete(snap, sig());
      await driver.deleteVolume(clone, sig());
      await driver.deleteVolume(vol, sig());
    } finally {
      await cleanup();
    }
  });

  it('uses reflink for qcow2 snapshots too, so the volume file is never replaced', async () => {
    const { driver, cleanup } = await xfsDriver('qcow2');
    try {
      const vol = await driver.createVolume({ id: newId('volume'), name: 'v', sizeBytes: 8 * 1024 * 1024 }, sig());
      const snap = await driver.snapshots.create(vol, newId('snapshot'), sig());
      expect(snap).toMatchObject({ method: 'reflink', format: 'qcow2' });
      // A clone into another format cannot be a reflink: it is an honest full copy.
      const raw = await driver.clones.clone(vol, { id: newId('volume'), name: 'c', sizeBytes: 8 * 1024 * 1024, format: 'raw' }, sig());
      expect(raw).toMatchObject({ method: 'copy', format: 'raw' });
      await driver.snapshots.delete(snap, sig());
      await driver.deleteVolume(raw, sig());
      await driver.deleteVolume(vol, sig());
    } finally {
      await cleanup();
    }
  });
});
