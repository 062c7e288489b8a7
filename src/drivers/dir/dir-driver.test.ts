import { existsSync } from 'node:fs';
import { link, mkdtemp, readFile, readdir, rm, rmdir, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StowageError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import { VOLUME_FORMATS, type VolumeFormat } from '../../core/states.js';
import { SpawnCommandRunner, type CommandRunner, type RunOptions, type RunResult } from '../../system/command-runner.js';
import { describeBlockDriverConformance, qemuIoDataAccess } from '../../../test/drivers/conformance.js';
import { codeOf } from '../../../test/helpers/error-codes.js';
import { DriverRegistry } from '../sdk/registry.js';
import { DirDriver, dirCapabilities, dirDriverFactory } from './dir-driver.js';

const runner = new SpawnCommandRunner();
const sig = (): AbortSignal => new AbortController().signal;

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), `stowage-dir-test-${String(process.pid)}-`));
}

function makeDriver(dir: string, format: VolumeFormat, r: CommandRunner = runner): DirDriver {
  const driver = dirDriverFactory.create(new URL(`dir://${dir}?format=${format}`), {}, { runner: r, dataDir: dir });
  if (!(driver instanceof DirDriver)) throw new Error('dir factory must build a DirDriver');
  return driver;
}

/** A real runner that records every argv it runs. */
class RecordingRunner implements CommandRunner {
  readonly calls: { cmd: string; args: readonly string[] }[] = [];
  constructor(private readonly inner: CommandRunner, private readonly env?: Readonly<Record<string, string>>) {}
  run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    this.calls.push({ cmd, args });
    return this.inner.run(cmd, args, this.env ? { ...options, env: { ...options.env, ...this.env } } : options);
  }
}

for (const format of VOLUME_FORMATS) {
  describeBlockDriverConformance(`dir, ${format}, ${tmpdir()} (no reflink)`, async () => {
    const dir = await tempDir();
    const driver = makeDriver(dir, format);
    return { driver, data: qemuIoDataAccess(driver, runner), cleanup: () => rm(dir, { recursive: true, force: true }) };
  }, { claims: ['snapshot', 'clone', 'revert'] }); // by qemu-img, which this machine has
}

describe('dir driver specifics', () => {
  let dir = '';
  let driver: DirDriver;
  beforeAll(async () => {
    dir = await tempDir();
    driver = makeDriver(dir, 'raw');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is registered under dir:// and validates its URI', () => {
    const registry = new DriverRegistry([dirDriverFactory]);
    const d = registry.create(`dir://${dir}`, { format: 'qcow2' }, { runner, dataDir: dir });
    if (!(d instanceof DirDriver)) throw new Error('expected a DirDriver');
    expect(d.defaultFormat).toBe('qcow2');
    expect(d.dir).toBe(dir);
    for (const bad of ['dir://host/srv', 'dir:relative/path', 'dir:///', `dir://${dir}?format=vmdk`, `dir://${dir}?bogus=1`, `dir://${dir}#frag`]) {
      expect(() => registry.create(bad, {}, { runner, dataDir: dir }), bad).toThrow(expect.objectContaining({ code: 'INVALID_DRIVER_URI' }) as Error);
    }
    expect(() => registry.create(`dir://${dir}?format=raw`, { format: 'qcow2' }, { runner, dataDir: dir })).toThrow(/twice/);
  });

  it('reports capabilities honestly', async () => {
    const report = await driver.probe(sig());
    expect(report.info?.reflink).toBe('no'); // os.tmpdir() here is ext4
    expect(report.capabilities).toEqual(dirCapabilities({ qemuImg: true, reflink: false }));
    expect(report.capabilities).not.toContain('clone.offload');
    expect(dirCapabilities({ qemuImg: false, reflink: false })).toEqual(['thin', 'resize', 'format.raw']);
    expect(dirCapabilities({ qemuImg: false, reflink: true })).toEqual(['thin', 'resize', 'format.raw', 'snapshot', 'clone', 'revert', 'snapshot.offload', 'clone.offload']);
  });

  it('rejects ids that could escape the directory or carry shell syntax, before touching anything', async () => {
    const before = await readdir(dir);
    const canary = join(tmpdir(), `stowage-pwned-${String(process.pid)}`);
    const bad = ['../x', 'vol-../../etc', `vol-${'a'.repeat(19)}/`, `vol-$(touch ${canary})`, 'vol-aaaa;rm -rf /', '/etc/passwd', 'vol-AAAAAAAAAAAAAAAAAAAA', `vol-${'a'.repeat(21)}`, `snap-${'a'.repeat(20)}`, ''];
    for (const id of bad) {
      expect(await codeOf(driver.createVolume({ id, name: 'x', sizeBytes: 4096 }, sig())), id).toBe('VALIDATION_FAILED');
      expect(await codeOf(driver.deleteVolume({ id, format: 'raw' }, sig())), id).toBe('VALIDATION_FAILED');
      expect(await codeOf(driver.resizeVolume({ id, format: 'raw' }, 8192, sig())), id).toBe('VALIDATION_FAILED');
      expect(() => driver.data.locate({ id, format: 'raw' }), id).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }) as Error);
    }
    for (const id of ['../x', 'snap-../../etc', `snap-$(touch ${canary})`, newId('volume'), `snap-${'a'.repeat(19)}/`]) {
      expect(await codeOf(driver.snapshots.create({ id: newId('volume'), format: 'raw' }, id, sig())), id).toBe('VALIDATION_FAILED');
      expect(await codeOf(driver.snapshots.delete({ id, format: 'raw' }, sig())), id).toBe('VALIDATION_FAILED');
    }
    expect(await codeOf(driver.deleteVolume({ id: newId('volume'), format: '../raw' }, sig()))).toBe('VALIDATION_FAILED');
    expect(await readdir(dir)).toEqual(before);
    expect(existsSync(canary)).toBe(false);
  });

  it('builds file names and argv from the id only: the volume name and extra handle fields are ignored', async () => {
    const recording = new RecordingRunner(runner);
    const d = makeDriver(dir, 'qcow2', recording);
    const canary = join(tmpdir(), `stowage-pwned-${String(process.pid)}`);
    const id = newId('volume');
    const name = `x'; touch ${canary}; $(touch ${canary}) \`touch ${canary}\``;
    const handle = await d.createVolume({ id, name, sizeBytes: 1024 * 1024 }, sig());
    expect(handle).toEqual({ id, format: 'qcow2' });
    await d.resizeVolume({ ...handle, path: '/etc/passwd' }, 2 * 1024 * 1024, sig());
    expect(d.data.locate({ ...handle, path: '/etc/passwd' })).toEqual({ path: join(dir, `${id}.qcow2`), format: 'qcow2' });
    const victim = join(dir, 'not-a-volume.raw');
    await writeFile(victim, 'keep me');
    await d.deleteVolume({ ...handle, path: victim }, sig());
    expect(existsSync(victim)).toBe(true);
    expect(existsSync(join(dir, `${id}.qcow2`))).toBe(false);
    expect(existsSync(canary)).toBe(false);
    const argvText = JSON.stringify(recording.calls);
    expect(argvText).not.toContain('touch');
    for (const call of recording.calls) {
      expect(['qemu-img', 'cp']).toContain(call.cmd);
      for (const arg of call.args.filter((a) => a.startsWith('/'))) expect(arg.startsWith(`${dir}/`), arg).toBe(true);
    }
    await rm(victim);
  });

  it('never leaves a half file under a final name: temp files are ignored by list and swept when abandoned', async () => {
    const id = newId('volume');
    const abandoned = join(dir, `.${id}.tmp-0123456789abcdef`);
    const fresh = join(dir, `.${newId('volume')}.tmp-fedcba9876543210`);
    await writeFile(abandoned, 'half a qcow2 header');
    await writeFile(fresh, 'an in-progress create elsewhere');
    const hourAgo = new Date(Date.now() - 60 * 60 * 1000);
    await utimes(abandoned, hourAgo, hourAgo);
    const foreign = join(dir, 'README');
    await writeFile(foreign, 'not ours');

    expect((await driver.listVolumes(sig())).map((v) => v.id)).not.toContain(id);
    await driver.probe(sig()); // sweeps temp files older than 15 minutes
    expect(existsSync(abandoned)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
    expect(existsSync(foreign)).toBe(true);
    expect(await driver.cleanupTempFiles(0)).toEqual([fresh.slice(dir.length + 1)]);
    expect(existsSync(foreign)).toBe(true);
    await rm(foreign);
  });

  it('a kill -9 in the middle of a create leaves only a temp file, which list ignores and cleanup sweeps', async () => {
    const id = newId('volume');
    const script = join(dir, 'crash-child.mts');
    // The child creates a qcow2 volume with a runner that stops forever once qemu-img has written the
    // temp image (announcing READY); the parent then SIGKILLs it, so no finally block ever runs.
    await writeFile(script, [
      `import { DirDriver } from ${JSON.stringify(new URL('./dir-driver.js', import.meta.url).pathname)};`,
      `import { SpawnCommandRunner } from ${JSON.stringify(new URL('../../system/command-runner.js', import.meta.url).pathname)};`,
      'const real = new SpawnCommandRunner();',
      'const runner = { async run(cmd, args, opts) { const r = await real.run(cmd, args, opts);',
      "  if (cmd === 'qemu-img' && args[0] === 'create') { console.log('READY'); setInterval(() => {}, 1000); await new Promise(() => {}); }",
      '  return r; } };',
      `const d = new DirDriver({ dir: process.argv[2], defaultFormat: 'qcow2' }, runner);`,
      `await d.createVolume({ id: process.argv[3], name: 'x', sizeBytes: 1048576 }, new AbortController().signal);`,
    ].join('\n'));
    const ac = new AbortController();
    const child = runner.run(process.execPath, ['--import', 'tsx', script, dir, id], {
      cwd: process.cwd(), signal: ac.signal, timeoutMs: 60_000,
      onOutput: (chunk) => { if (chunk.includes('READY')) ac.abort(); }, // the runner SIGKILLs the process group
    });
    await expect(child).rejects.toThrow(/was cancelled/);
    await rm(script);

    const leftovers = (await readdir(dir)).filter((n) => n.includes(id));
    expect(leftovers).toHaveLength(1);
    expect(leftovers[0]).toMatch(new RegExp(`^\\.${id}\\.tmp-[0-9a-f]{16}$`));
    const d = makeDriver(dir, 'qcow2');
    expect((await d.listVolumes(sig())).map((v) => v.id)).not.toContain(id);
    expect(await d.cleanupTempFiles(0)).toEqual(leftovers);
    const handle = await d.createVolume({ id, name: 'x', sizeBytes: 1048576 }, sig()); // the retry works
    expect((await d.listVolumes(sig())).filter((v) => v.id === id).map((v) => v.sizeBytes)).toEqual([1048576]);
    await d.deleteVolume(handle, sig());
  });

  it('refuses a different format for an existing id and sizes qcow2 cannot hold exactly', async () => {
    const id = newId('volume');
    const h = await driver.createVolume({ id, name: 'v', sizeBytes: 1000 }, sig());
    expect((await stat(join(dir, `${id}.raw`))).size).toBe(1000);
    expect((await stat(join(dir, `${id}.raw`))).blocks).toBe(0); // sparse
    const otherId = newId('volume');
    const other = await driver.createVolume({ id: otherId, name: 'v', sizeBytes: 4096 }, sig());
    expect(await codeOf(driver.createVolume({ id: otherId, name: 'v', sizeBytes: 4096, format: 'qcow2' }, sig()))).toBe('INVALID_STATE');
    await driver.deleteVolume(other, sig());
    expect(await codeOf(driver.createVolume({ id: newId('volume'), name: 'v', sizeBytes: 1000, format: 'qcow2' }, sig()))).toBe('INVALID_SIZE');
    expect(await codeOf(driver.resizeVolume({ id: newId('volume'), format: 'raw' }, 8192, sig()))).toBe('VOLUME_NOT_FOUND');
    await driver.deleteVolume(h, sig());
  });

  it('records how snapshots and clones were made (no reflink here)', async () => {
    for (const format of VOLUME_FORMATS) {
      const vol = await driver.createVolume({ id: newId('volume'), name: 'v', sizeBytes: 1024 * 1024, format }, sig());
      const snap = await driver.snapshots.create(vol, newId('snapshot'), sig());
      expect(snap).toMatchObject({ format, method: format === 'qcow2' ? 'qcow2-backing' : 'copy', sizeBytes: 1024 * 1024 });
      const fromSnap = await driver.clones.clone(snap, { id: newId('volume'), name: 'c', sizeBytes: 1024 * 1024, format: 'qcow2' }, sig());
      expect(fromSnap).toMatchObject({ format: 'qcow2', method: 'qcow2-backing' });
      const fromVol = await driver.clones.clone(vol, { id: newId('volume'), name: 'c', sizeBytes: 1024 * 1024, format }, sig());
      expect(fromVol).toMatchObject({ format, method: 'copy' });
      await driver.snapshots.delete(snap, sig());
      for (const h of [fromSnap, fromVol, vol]) await driver.deleteVolume(h, sig());
    }
  });

  it('finishes or rolls back a qcow2 snapshot interrupted between its link and its rename', async () => {
    const d = makeDriver(dir, 'qcow2');
    const io = qemuIoDataAccess(d, runner);
    for (const next of ['retry', 'delete'] as const) {
      const vol = await d.createVolume({ id: newId('volume'), name: 'v', sizeBytes: 1024 * 1024 }, sig());
      await io.fill(vol, 0, 65536, 0x11, sig());
      const snapId = newId('snapshot');
      const snapPath = join(dir, `${snapId}.qcow2`);
      await link(d.data.locate(vol).path, snapPath); // the state a kill -9 after step 1 leaves behind
      const snap = { id: snapId, volumeId: vol.id, format: 'qcow2', method: 'qcow2-backing', sizeBytes: 1024 * 1024 };
      if (next === 'retry') {
        expect(await d.snapshots.create(vol, snapId, sig())).toEqual(snap);
        expect((await stat(snapPath)).ino).not.toBe((await stat(d.data.locate(vol).path)).ino);
        await io.fill(vol, 0, 65536, 0x22, sig());
        const clone = await d.clones.clone(snap, { id: newId('volume'), name: 'c', sizeBytes: 1024 * 1024 }, sig());
        expect(await io.isFilled(clone, 0, 65536, 0x11, sig())).toBe(true);
        await d.deleteVolume(clone, sig());
      }
      await d.snapshots.delete(snap, sig());
      expect(existsSync(snapPath)).toBe(false);
      expect(await io.isFilled(vol, 0, 65536, next === 'retry' ? 0x22 : 0x11, sig())).toBe(true);
      await d.deleteVolume(vol, sig());
    }
  });

  it('reports qcow2 volumes held open by another process as in use instead of snapshotting under them', async () => {
    const d = makeDriver(dir, 'qcow2');
    const vol = await d.createVolume({ id: newId('volume'), name: 'v', sizeBytes: 1024 * 1024 }, sig());
    const { path } = d.data.locate(vol);
    // A real holder: qemu-storage-daemon with the image as a writable blockdev (write-locked).
    const pidFile = join(dir, `qsd-${String(process.pid)}.pid`);
    await runner.run('qemu-storage-daemon', ['--blockdev', `driver=file,node-name=f0,filename=${path}`, '--blockdev', 'driver=qcow2,node-name=q0,file=f0', '--daemonize', '--pidfile', pidFile], { timeoutMs: 30_000 });
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    try {
      expect(await codeOf(d.snapshots.create(vol, newId('snapshot'), sig()))).toBe('VOLUME_IN_USE');
    } finally {
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 100 && existsSync(`/proc/${String(pid)}`); i++) await new Promise((r) => setTimeout(r, 50));
    }
    expect((await readdir(dir)).filter((n) => n.startsWith('snap-'))).toEqual([]);
    await d.deleteVolume(vol, sig());
  });

  it('without a runnable qemu-img: raw still works, qcow2 is CAPABILITY_MISSING', async () => {
    const noQemu = new RecordingRunner(runner, { PATH: '/nonexistent' });
    const d = makeDriver(dir, 'qcow2', noQemu);
    const report = await d.probe(sig());
    expect(report.capabilities).not.toContain('format.qcow2');
    expect(report.capabilities).not.toContain('snapshot');
    expect(await codeOf(d.createVolume({ id: newId('volume'), name: 'v', sizeBytes: 4096 }, sig()))).toBe('CAPABILITY_MISSING');
    const raw = await d.createVolume({ id: newId('volume'), name: 'v', sizeBytes: 4096, format: 'raw' }, sig());
    expect(await codeOf(d.snapshots.create(raw, newId('snapshot'), sig()))).toBe('CAPABILITY_MISSING');
    await d.deleteVolume(raw, sig());
  });

  it('goes offline with BACKEND_UNAVAILABLE when the directory disappears', async () => {
    const gone = await tempDir();
    const d = makeDriver(gone, 'raw');
    await d.probe(sig());
    await rmdir(gone);
    const probeErr = await d.probe(sig()).catch((err: unknown) => err);
    expect(probeErr).toBeInstanceOf(StowageError);
    expect((probeErr as StowageError).code).toBe('BACKEND_UNAVAILABLE');
    expect((probeErr as StowageError).message).toContain(gone);
    expect((probeErr as StowageError).message).toMatch(/ENOENT|no such file/i);
    expect(await codeOf(d.listVolumes(sig()))).toBe('BACKEND_UNAVAILABLE');
    expect(await codeOf(d.createVolume({ id: newId('volume'), name: 'v', sizeBytes: 4096 }, sig()))).toBe('BACKEND_UNAVAILABLE');
    expect(await codeOf(d.deleteVolume({ id: newId('volume'), format: 'raw' }, sig()))).toBe('BACKEND_UNAVAILABLE');
    await writeFile(gone, 'now a file');
    expect(await codeOf(d.probe(sig()))).toBe('BACKEND_UNAVAILABLE');
    await rm(gone);
  });
});
