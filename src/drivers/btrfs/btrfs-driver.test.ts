import { open, readFile, stat } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../core/ids.js';
import { StowageError } from '../../core/errors.js';
import { CommandFailedError, SpawnCommandRunner } from '../../system/command-runner.js';
import { startLab, type Lab } from '../../../test/lab/lab.js';
import { parseSubvolumeShow } from './btrfs-parse.js';
import { BtrfsDriver, btrfsDriverFactory, parseBtrfsOptions, qgroupLimitBytes } from './btrfs-driver.js';

const MiB = 1024 * 1024;
const runner = new SpawnCommandRunner();
const signal = new AbortController().signal;

async function writeAt(path: string, offset: number, byte: number, length = 4096): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.write(Buffer.alloc(length, byte), 0, length, offset);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function readAt(path: string, offset: number, length = 4096): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, offset);
    return buf;
  } finally {
    await fh.close();
  }
}

async function subvolumeShow(path: string): Promise<ReturnType<typeof parseSubvolumeShow>> {
  return parseSubvolumeShow((await runner.run('btrfs', ['subvolume', 'show', path])).stdout);
}

function makeDriver(dir: string, options: Record<string, string> = {}): BtrfsDriver {
  return new BtrfsDriver(parseBtrfsOptions(new URL(`btrfs://${dir}`), options), runner);
}

describe('btrfs driver on a real btrfs loop mount', () => {
  let lab: Lab;
  let driver: BtrfsDriver;
  let dir: string;

  beforeAll(async () => {
    lab = await startLab({ hosts: 0, tgtd: false, btrfs: true, xfs: false, btrfsSizeBytes: 3 * 1024 * MiB });
    dir = `${lab.btrfsDir}/pool`;
    driver = makeDriver(dir);
  });

  afterAll(async () => {
    await lab.stop();
  });

  it('probes capacity and capabilities, and refuses a directory that is not on btrfs', async () => {
    const report = await driver.probe(signal);
    expect(report.totalBytes).toBe(3 * 1024 * MiB);
    expect(report.freeBytes).toBeGreaterThan(0);
    expect(report.capabilities).toEqual(expect.arrayContaining(['thin', 'snapshot.offload', 'clone.offload', 'revert']));
    expect(report.capabilities).not.toContain('quota');
    await expect(makeDriver(`${lab.runDir}/not-btrfs`).probe(signal)).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
  });

  it('creates a sparse raw image in its own subvolume, idempotently', async () => {
    const id = newId('volume');
    const handle = await driver.createVolume({ id, name: 'a', sizeBytes: 64 * MiB }, signal);
    expect(await driver.createVolume({ id, name: 'a', sizeBytes: 64 * MiB }, signal)).toEqual(handle);
    const { path, format } = driver.data.locate(handle);
    expect(format).toBe('raw');
    const st = await stat(path);
    expect(st.size).toBe(64 * MiB);
    expect(st.blocks).toBe(0);
    expect(await subvolumeShow(`${dir}/${id}`)).toMatchObject({ name: id, readonly: false });
    await expect(driver.createVolume({ id, name: 'a', sizeBytes: 32 * MiB }, signal)).rejects.toMatchObject({ code: 'INVALID_STATE' });
    expect((await driver.listVolumes(signal)).find((v) => v.id === id)).toMatchObject({ sizeBytes: 64 * MiB, handle });
  });

  it('rejects ids that are not volume ids and handles that would escape the directory', async () => {
    await expect(driver.createVolume({ id: '../etc', name: 'x', sizeBytes: MiB }, signal)).rejects.toBeInstanceOf(StowageError);
    await expect(driver.deleteVolume({ volumeId: 'vol-../../x' }, signal)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(() => driver.data.locate({ volumeId: '/etc/passwd' })).toThrow(StowageError);
    expect(() => btrfsDriverFactory.create(new URL('btrfs://host/x'), {}, { runner, dataDir: '/tmp' })).toThrow(/must not name a host/);
  });

  it('snapshots read-only, clones writable and in constant time, and reverts without losing data', async () => {
    const id = newId('volume');
    const vol = await driver.createVolume({ id, name: 'src', sizeBytes: 64 * MiB }, signal);
    const disk = driver.data.locate(vol).path;
    await writeAt(disk, 0, 0xaa);
    await writeAt(disk, 8 * MiB, 0xbb);

    const snapId = newId('snapshot');
    const snap = await driver.snapshots.create(vol, snapId, signal);
    expect(await driver.snapshots.create(vol, snapId, signal)).toEqual(snap);
    const volInfo = await subvolumeShow(`${dir}/${id}`);
    const snapInfo = await subvolumeShow(`${dir}/${snapId}`);
    expect(snapInfo).toMatchObject({ readonly: true, parentUuid: volInfo?.uuid });

    await writeAt(disk, 0, 0xcc);
    expect((await readAt(`${dir}/${snapId}/disk.raw`, 0)).every((b) => b === 0xaa)).toBe(true);

    // The clone is a writable btrfs snapshot of the snapshot: shares extents, no data copied.
    const cloneId = newId('volume');
    const clone = await driver.clones.clone(snap, { id: cloneId, name: 'clone', sizeBytes: 128 * MiB }, signal);
    expect(await driver.clones.clone(snap, { id: cloneId, name: 'clone', sizeBytes: 128 * MiB }, signal)).toEqual(clone);
    expect(await subvolumeShow(`${dir}/${cloneId}`)).toMatchObject({ readonly: false, parentUuid: snapInfo?.uuid });
    const cloneDisk = driver.data.locate(clone).path;
    expect((await stat(cloneDisk)).size).toBe(128 * MiB);
    expect((await readAt(cloneDisk, 0)).every((b) => b === 0xaa)).toBe(true);
    expect((await readAt(cloneDisk, 8 * MiB)).every((b) => b === 0xbb)).toBe(true);
    await writeAt(cloneDisk, 8 * MiB, 0xdd);
    expect((await readAt(disk, 8 * MiB)).every((b) => b === 0xbb)).toBe(true);

    // Clone of a live volume sees its current data.
    const clone2 = await driver.clones.clone(vol, { id: newId('volume'), name: 'clone2', sizeBytes: 64 * MiB }, signal);
    expect((await readAt(driver.data.locate(clone2).path, 0)).every((b) => b === 0xcc)).toBe(true);
    await expect(driver.clones.clone(vol, { id: newId('volume'), name: 'small', sizeBytes: 32 * MiB }, signal)).rejects.toMatchObject({ code: 'SHRINK_NOT_SUPPORTED' });

    // Revert after a grow: snapshot data comes back, the grown size stays.
    await driver.resizeVolume(vol, 96 * MiB, signal);
    await writeAt(disk, 80 * MiB, 0xee);
    await driver.revert.revert(vol, snap, signal);
    expect((await stat(disk)).size).toBe(96 * MiB);
    expect((await readAt(disk, 0)).every((b) => b === 0xaa)).toBe(true);
    expect((await readAt(disk, 8 * MiB)).every((b) => b === 0xbb)).toBe(true);
    expect((await readAt(disk, 80 * MiB)).every((b) => b === 0)).toBe(true);
    // The reverted file shares its extents with the snapshot (reflink, not a byte copy).
    const du = (await runner.run('btrfs', ['filesystem', 'du', '--raw', '-s', disk])).stdout;
    const shared = /^\s*\d+\s+\d+\s+(\d+)/m.exec(du.split('\n')[1] ?? '');
    expect(Number(shared?.[1])).toBeGreaterThanOrEqual(8192);

    await driver.snapshots.delete(snap, signal);
    await driver.snapshots.delete(snap, signal);
    await expect(stat(`${dir}/${snapId}`)).rejects.toMatchObject({ code: 'ENOENT' });
    // The clone outlives the snapshot it came from.
    expect((await readAt(cloneDisk, 0)).every((b) => b === 0xaa)).toBe(true);
  });

  it('grows, refuses to shrink, and deletes idempotently', async () => {
    const id = newId('volume');
    const vol = await driver.createVolume({ id, name: 'r', sizeBytes: 16 * MiB }, signal);
    await driver.resizeVolume(vol, 48 * MiB, signal);
    await driver.resizeVolume(vol, 48 * MiB, signal);
    expect((await stat(driver.data.locate(vol).path)).size).toBe(48 * MiB);
    await expect(driver.resizeVolume(vol, 16 * MiB, signal)).rejects.toMatchObject({ code: 'SHRINK_NOT_SUPPORTED' });
    await driver.deleteVolume(vol, signal);
    await driver.deleteVolume(vol, signal);
    expect((await driver.listVolumes(signal)).map((v) => v.id)).not.toContain(id);
  });

  describe('with quota=on', () => {
    let qdriver: BtrfsDriver;
    beforeAll(() => {
      qdriver = makeDriver(`${lab.btrfsDir}/quota`, { quota: 'on' });
    });

    it('holds a volume to its size with a qgroup limit and still deletes it when full', async () => {
      const report = await qdriver.probe(signal);
      expect(report.capabilities).toContain('quota');
      const id = newId('volume');
      const vol = await qdriver.createVolume({ id, name: 'q', sizeBytes: 32 * MiB }, signal);
      const qgroups = (await runner.run('btrfs', ['qgroup', 'show', '-re', '--raw', `${lab.btrfsDir}/quota/${id}`])).stdout;
      expect(qgroups).toMatch(new RegExp(`\\s${String(qgroupLimitBytes(32 * MiB))}\\s`));
      const disk = qdriver.data.locate(vol).path;
      // Writing within the size works.
      await runner.run('dd', ['if=/dev/zero', `of=${disk}`, 'bs=1M', 'count=16', 'conv=notrunc,fsync', 'status=none']);
      // Writing far past the size fails with EDQUOT.
      const err = await runner.run('dd', ['if=/dev/zero', `of=${disk}`, 'bs=1M', 'count=128', 'conv=notrunc,fsync', 'status=none']).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(CommandFailedError);
      expect((err as CommandFailedError).stderrTail).toMatch(/Disk quota exceeded/);
      await qdriver.deleteVolume(vol, signal);
      expect((await qdriver.listVolumes(signal)).map((v) => v.id)).not.toContain(id);
    });

    it('reverts a nearly full volume without tripping its own limit', async () => {
      const vol = await qdriver.createVolume({ id: newId('volume'), name: 'q3', sizeBytes: 32 * MiB }, signal);
      const disk = qdriver.data.locate(vol).path;
      await runner.run('dd', ['if=/dev/urandom', `of=${disk}`, 'bs=1M', 'count=30', 'conv=notrunc,fsync', 'status=none']);
      const snap = await qdriver.snapshots.create(vol, newId('snapshot'), signal);
      await runner.run('dd', ['if=/dev/zero', `of=${disk}`, 'bs=1M', 'count=30', 'conv=notrunc,fsync', 'status=none']);
      await qdriver.revert.revert(vol, snap, signal);
      expect((await readAt(disk, 0, 4096)).equals(await readAt(`${lab.btrfsDir}/quota/${String(snap.snapshotId)}/disk.raw`, 0, 4096))).toBe(true);
      // Still writable within its size after the revert.
      await runner.run('dd', ['if=/dev/zero', `of=${disk}`, 'bs=1M', 'count=30', 'conv=notrunc,fsync', 'status=none']);
      await qdriver.snapshots.delete(snap, signal);
      await qdriver.deleteVolume(vol, signal);
    });

    it('keeps the limit in step with a resize', async () => {
      const vol = await qdriver.createVolume({ id: newId('volume'), name: 'q2', sizeBytes: 32 * MiB }, signal);
      await qdriver.resizeVolume(vol, 96 * MiB, signal);
      const disk = qdriver.data.locate(vol).path;
      await runner.run('dd', ['if=/dev/zero', `of=${disk}`, 'bs=1M', 'count=80', 'conv=notrunc,fsync', 'status=none']);
      expect((await readFile(disk)).length).toBe(96 * MiB);
      await qdriver.deleteVolume(vol, signal);
    });
  });
});
