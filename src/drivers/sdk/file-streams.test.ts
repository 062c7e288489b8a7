import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeOf } from '../../../test/helpers/error-codes.js';
import { StowageError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import { SpawnCommandRunner } from '../../system/command-runner.js';
import { DirDriver } from '../dir/dir-driver.js';
import type { DataPort } from './ports.js';
import type { DriverHandle } from './types.js';

const runner = new SpawnCommandRunner();
const MiB = 1024 * 1024;
const sig = (): AbortSignal => new AbortController().signal;

let root = '';
let raw: DirDriver;
let raw2: DirDriver;
let qcow2: DirDriver;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-file-streams-'));
  const dir = async (name: string): Promise<string> => { const d = join(root, name); await mkdir(d); return d; };
  raw = new DirDriver({ dir: await dir('a'), defaultFormat: 'raw' }, runner);
  raw2 = new DirDriver({ dir: await dir('b'), defaultFormat: 'raw' }, runner);
  qcow2 = new DirDriver({ dir: await dir('q'), defaultFormat: 'qcow2' }, runner);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});


const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const streams = (d: DirDriver): Required<DataPort> => d.data as Required<DataPort>;
const vol = (d: DirDriver, sizeBytes: number): Promise<DriverHandle> => d.createVolume({ id: newId('volume'), name: 'v', sizeBytes }, sig());

describe('file data streams (the local drivers\' openRead/writeFrom)', () => {
  it('copies a raw volume byte-exact into a larger one, keeping holes and the larger size, flushed, with progress', async () => {
    const src = await vol(raw, 8 * MiB);
    const content = Buffer.concat([randomBytes(3 * MiB), Buffer.alloc(2 * MiB), randomBytes(3 * MiB)]);
    await writeFile(streams(raw).locate(src).path, content);
    const dst = await vol(raw2, 12 * MiB);
    await writeFile(streams(raw2).locate(dst).path, Buffer.alloc(12 * MiB, 0xee)); // garbage to replace
    const progress: number[] = [];
    const data = await streams(raw).openRead(src, sig());
    expect(data).toMatchObject({ sizeBytes: 8 * MiB, format: 'raw' });
    await streams(raw2).writeFrom(dst, data, sig(), (n) => progress.push(n));
    const out = await readFile(streams(raw2).locate(dst).path);
    expect(out.length).toBe(12 * MiB);
    expect(sha(out.subarray(0, 8 * MiB))).toBe(sha(content));
    expect(out.subarray(8 * MiB).equals(Buffer.alloc(4 * MiB))).toBe(true);
    expect((await stat(streams(raw2).locate(dst).path)).blocks * 512).toBeLessThanOrEqual(6 * MiB + 64 * 1024);
    expect(progress.at(-1)).toBe(8 * MiB);
    expect(progress).toEqual([...progress].sort((x, y) => x - y));
  });

  it('refuses a stream between different formats and qcow2 streams, changing nothing', async () => {
    const dst = await vol(raw2, 4 * MiB);
    const before = await readFile(streams(raw2).locate(dst).path);
    const one = (format: 'raw' | 'qcow2'): { stream: Readable; sizeBytes: number; format: 'raw' | 'qcow2' } => ({ stream: Readable.from([Buffer.alloc(MiB, 7)]), sizeBytes: MiB, format });
    expect(await codeOf(streams(raw2).writeFrom(dst, one('qcow2'), sig()))).toBe('VALIDATION_FAILED');
    const q = await vol(qcow2, 4 * MiB);
    expect(await codeOf(streams(qcow2).writeFrom(q, one('raw'), sig()))).toBe('VALIDATION_FAILED');
    expect(await codeOf(streams(qcow2).writeFrom(q, one('qcow2'), sig()))).toBe('CAPABILITY_MISSING');
    expect(await codeOf(streams(qcow2).openRead(q, sig()))).toBe('CAPABILITY_MISSING');
    expect((await readFile(streams(raw2).locate(dst).path)).equals(before)).toBe(true);
    expect(await codeOf(streams(raw).openRead({ id: newId('volume'), format: 'raw' }, sig()))).toBe('VOLUME_NOT_FOUND');
  });

  it('fails a stream that ends early or runs long; a full retry then overwrites the volume', async () => {
    const src = await vol(raw, 2 * MiB);
    const content = randomBytes(2 * MiB);
    await writeFile(streams(raw).locate(src).path, content);
    const dst = await vol(raw2, 2 * MiB);
    expect(await codeOf(streams(raw2).writeFrom(dst, { stream: Readable.from([content.subarray(0, MiB)]), sizeBytes: 2 * MiB, format: 'raw' }, sig()))).toBe('DRIVER_FAILED');
    expect(await codeOf(streams(raw2).writeFrom(dst, { stream: Readable.from([content, content]), sizeBytes: 2 * MiB, format: 'raw' }, sig()))).toBe('VALIDATION_FAILED');
    await streams(raw2).writeFrom(dst, await streams(raw).openRead(src, sig()), sig());
    expect(sha(await readFile(streams(raw2).locate(dst).path))).toBe(sha(content));
  });

  it('a newer stream into the same volume stops the one before it (the retry is the one that counts)', async () => {
    const dst = await vol(raw2, 2 * MiB);
    const stalled = new PassThrough();
    stalled.write(Buffer.alloc(MiB, 1));
    const first = codeOf(streams(raw2).writeFrom(dst, { stream: stalled, sizeBytes: 2 * MiB, format: 'raw' }, sig()));
    const content = randomBytes(2 * MiB);
    await new Promise((r) => setImmediate(r));
    await streams(raw2).writeFrom(dst, { stream: Readable.from([content]), sizeBytes: 2 * MiB, format: 'raw' }, sig());
    expect(await first).toBe('INVALID_STATE');
    const fh = await open(streams(raw2).locate(dst).path, 'r');
    const out = Buffer.alloc(2 * MiB);
    await fh.read(out, 0, out.length, 0);
    await fh.close();
    expect(sha(out)).toBe(sha(content));
  });

  it('stops when cancelled', async () => {
    const dst = await vol(raw2, 2 * MiB);
    const ac = new AbortController();
    const stalled = new PassThrough();
    const p = streams(raw2).writeFrom(dst, { stream: stalled, sizeBytes: 2 * MiB, format: 'raw' }, ac.signal);
    ac.abort(new StowageError('TIMEOUT', 'cancelled', {}));
    expect(await codeOf(p)).toBe('TIMEOUT');
  });
});
