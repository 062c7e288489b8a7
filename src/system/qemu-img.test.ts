import { open, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SpawnCommandRunner, type CommandRunner, type RunOptions, type RunResult } from './command-runner.js';
import { parseConvertProgress, parseQemuImgInfo, QEMU_IMG_AVAILABLE_FRESH_MS, QEMU_IMG_MISSING_FRESH_MS, QemuImg } from './qemu-img.js';

// Captured from qemu-img 7.2.22 (Debian 12): `qemu-img info -U -f qcow2 --output=json <overlay>`.
const OVERLAY_INFO = `{
    "backing-filename-format": "qcow2",
    "virtual-size": 1073741824,
    "filename": "vol-bbbbbbbbbbbbbbbbbbbb.qcow2",
    "cluster-size": 65536,
    "format": "qcow2",
    "actual-size": 200704,
    "format-specific": {
        "type": "qcow2",
        "data": {
            "compat": "1.1",
            "compression-type": "zlib",
            "lazy-refcounts": false,
            "refcount-bits": 16,
            "corrupt": false,
            "extended-l2": false
        }
    },
    "full-backing-filename": "snap-aaaaaaaaaaaaaaaaaaaa.qcow2",
    "backing-filename": "snap-aaaaaaaaaaaaaaaaaaaa.qcow2",
    "dirty-flag": false
}
`;

// Captured: `qemu-img info -f raw --output=json r.raw` on a 1 MiB sparse file.
const RAW_INFO = `{
    "virtual-size": 1048576,
    "filename": "r.raw",
    "format": "raw",
    "actual-size": 0,
    "dirty-flag": false
}
`;

describe('parseQemuImgInfo', () => {
  it('reads size, format and backing file of a qcow2 overlay', () => {
    expect(parseQemuImgInfo(OVERLAY_INFO)).toEqual({
      format: 'qcow2',
      virtualSizeBytes: 1073741824,
      actualSizeBytes: 200704,
      backingFile: 'snap-aaaaaaaaaaaaaaaaaaaa.qcow2',
      backingFormat: 'qcow2',
    });
  });

  it('reads a raw image without a backing file', () => {
    expect(parseQemuImgInfo(RAW_INFO)).toEqual({ format: 'raw', virtualSizeBytes: 1048576, actualSizeBytes: 0 });
  });

  it('rejects output that is not an image description', () => {
    for (const bad of ['', 'qemu-img: Could not open', '[]', 'null', '{"format":"raw"}', '{"format":"raw","virtual-size":-1}', '{"format":1,"virtual-size":1}']) {
      expect(() => parseQemuImgInfo(bad), bad).toThrow(expect.objectContaining({ code: 'DRIVER_FAILED' }) as Error);
    }
  });

  it('never throws anything but a StowageError on arbitrary input', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
      try {
        const info = parseQemuImgInfo(text);
        expect(Number.isSafeInteger(info.virtualSizeBytes)).toBe(true);
      } catch (err) {
        expect(err).toMatchObject({ code: 'DRIVER_FAILED' });
      }
    }));
  });

  it('matches what the installed qemu-img prints for a fresh overlay', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-qemu-img-'));
    try {
      const q = new QemuImg(new SpawnCommandRunner());
      const signal = new AbortController().signal;
      expect(await q.available(signal)).toBe(true);
      await q.createQcow2(join(dir, 'snap-aaaaaaaaaaaaaaaaaaaa.qcow2'), 2 * 1024 * 1024, undefined, signal);
      await q.createQcow2(join(dir, 'vol-bbbbbbbbbbbbbbbbbbbb.qcow2'), undefined, { file: 'snap-aaaaaaaaaaaaaaaaaaaa.qcow2', format: 'qcow2' }, signal);
      const info = await q.info(join(dir, 'vol-bbbbbbbbbbbbbbbbbbbb.qcow2'), 'qcow2', signal);
      expect(info).toMatchObject({ format: 'qcow2', virtualSizeBytes: 2 * 1024 * 1024, backingFile: 'snap-aaaaaaaaaaaaaaaaaaaa.qcow2', backingFormat: 'qcow2' });
      await q.rebase(join(dir, 'vol-bbbbbbbbbbbbbbbbbbbb.qcow2'), undefined, signal);
      expect((await q.info(join(dir, 'vol-bbbbbbbbbbbbbbbbbbbb.qcow2'), 'qcow2', signal)).backingFile).toBeUndefined();
      await expect(q.info('relative.qcow2', 'qcow2', signal)).rejects.toMatchObject({ code: 'INTERNAL' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('QemuImg.convert (the one copier: dir driver copies and host copies)', () => {
  it('reads the last progress figure of a chunk of `convert -p` output', () => {
    expect(parseConvertProgress('    (0.00/100%)\r    (1.01/100%)\r')).toBeCloseTo(0.0101);
    expect(parseConvertProgress('    (100.00/100%)\r')).toBe(1);
    expect(parseConvertProgress('qemu-img: some warning')).toBeUndefined();
  });

  it('copies into an existing 0600 target (-n) with progress, keeping its mode', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-qemu-convert-'));
    try {
      const q = new QemuImg(new SpawnCommandRunner());
      const signal = new AbortController().signal;
      const src = join(dir, 'src.raw');
      const dst = join(dir, 'dst.qcow2');
      const data = Buffer.alloc(2 * 1024 * 1024, 0x5a);
      await writeFile(src, data);
      await (await open(dst, 'wx', 0o600)).close();
      await q.create(dst, 'qcow2', data.length, signal);
      const seen: number[] = [];
      await q.convert(src, 'raw', dst, 'qcow2', signal, { targetExists: true, onProgress: (f) => { seen.push(f); } });
      expect(seen.at(-1)).toBe(1);
      expect((await stat(dst)).mode & 0o777).toBe(0o600);
      const back = join(dir, 'back.raw');
      await q.convert(dst, 'qcow2', back, 'raw', signal);
      expect((await readFile(back)).equals(data)).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** The real runner, counting the commands it starts; `missing` runs a name no host has instead of qemu-img. */
class CountingRunner implements CommandRunner {
  spawned = 0;
  private readonly inner = new SpawnCommandRunner();
  constructor(private readonly missing = false) {}

  run(cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult> {
    this.spawned++;
    return this.inner.run(this.missing ? 'stowage-no-such-qemu-img' : cmd, args, options);
  }
}

describe('QemuImg.available (one check per runner, shared)', () => {
  const signal = (): AbortSignal => new AbortController().signal;
  afterEach(() => { vi.useRealTimers(); });

  it('spawns once for many probes within the window, and again after it', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const runner = new CountingRunner();
    const answers = await Promise.all(Array.from({ length: 20 }, () => new QemuImg(runner).available(signal())));
    expect(answers.every(Boolean)).toBe(true);
    expect(await new QemuImg(runner).available(signal())).toBe(true);
    expect(runner.spawned).toBe(1);
    vi.setSystemTime(Date.now() + QEMU_IMG_AVAILABLE_FRESH_MS - 1);
    expect(await new QemuImg(runner).available(signal())).toBe(true);
    expect(runner.spawned).toBe(1);
    vi.setSystemTime(Date.now() + 2);
    expect(await new QemuImg(runner).available(signal())).toBe(true);
    expect(runner.spawned).toBe(2);
    expect(await new QemuImg(new CountingRunner()).available(signal())).toBe(true); // another runner asks for itself
  });

  it('an aborting first caller stops waiting; the second still gets true from the same run', async () => {
    const runner = new CountingRunner();
    const first = new AbortController();
    const held = new QemuImg(runner).available(first.signal);
    const second = new QemuImg(runner).available(signal());
    first.abort(new Error('probe cancelled'));
    await expect(held).rejects.toThrow('probe cancelled');
    expect(await second).toBe(true);
    expect(runner.spawned).toBe(1);
  });

  it('a check every caller abandoned is cancelled and not remembered', async () => {
    const runner = new CountingRunner();
    const only = new AbortController();
    const held = new QemuImg(runner).available(only.signal);
    only.abort();
    await expect(held).rejects.toThrow();
    expect(await new QemuImg(runner).available(signal())).toBe(true);
    expect(runner.spawned).toBe(2);
  });

  it('remembers a missing qemu-img for the shorter window only', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const runner = new CountingRunner(true);
    expect(await new QemuImg(runner).available(signal())).toBe(false);
    expect(await new QemuImg(runner).available(signal())).toBe(false);
    expect(runner.spawned).toBe(1);
    vi.setSystemTime(Date.now() + QEMU_IMG_MISSING_FRESH_MS);
    expect(await new QemuImg(runner).available(signal())).toBe(false);
    expect(runner.spawned).toBe(2);
  });
});
