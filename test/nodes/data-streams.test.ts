import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StowageError } from '../../src/core/errors.js';
import { newId } from '../../src/core/ids.js';
import type { VolumeData } from '../../src/drivers/sdk/ports.js';
import type { DriverHandle } from '../../src/drivers/sdk/types.js';
import type { NodeChannels } from '../../src/nodes/node-channels.js';
import { remoteDataStreams } from '../../src/nodes/remote-data.js';
import { SpawnCommandRunner } from '../../src/system/command-runner.js';
import { codeOf, startTestFleet, type TestChannels, type TestFleet, type TestNode } from './node-kit.js';

// Two `stowage node` servers in this process on loopback, each with a dir:// backend in its own
// temp dir, reached over pinned mutual TLS; this process plays the control plane in between.
const runner = new SpawnCommandRunner();
const MiB = 1024 * 1024;
const sig = (): AbortSignal => new AbortController().signal;

let a: TestNode;
let b: TestNode;
let fleet: TestFleet;
let channels: NodeChannels;
let bChannel: TestChannels;
let cpDataDir = '';

beforeAll(async () => {
  fleet = await startTestFleet(['sn1', 'sn2'], runner);
  [a, b, channels] = [fleet.nodes.sn1 as TestNode, fleet.nodes.sn2 as TestNode, fleet.all];
  bChannel = fleet.channels.sn2 as TestChannels;
  cpDataDir = await mkdtemp(join(tmpdir(), 'stowage-cp-data-'));
});
afterAll(async () => {
  await fleet.stop();
  await rm(cpDataDir, { recursive: true, force: true });
});

/** Fills the raw volume with random data but for a zero hole at [holeAt, holeAt + holeLen). */
async function fillRandom(path: string, sizeBytes: number, hole: { at: number; len: number }): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    for (let off = 0; off < sizeBytes; off += MiB) {
      if (off >= hole.at && off < hole.at + hole.len) continue;
      await fh.write(randomBytes(Math.min(MiB, sizeBytes - off)), 0, Math.min(MiB, sizeBytes - off), off);
    }
  } finally {
    await fh.close();
  }
}

/** Fills the whole file with one byte (a destination that holds garbage before a copy). */
async function fillWith(path: string, sizeBytes: number, byte: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const buf = Buffer.alloc(MiB, byte);
    for (let off = 0; off < sizeBytes; off += MiB) await fh.write(buf, 0, Math.min(MiB, sizeBytes - off), off);
  } finally {
    await fh.close();
  }
}

async function sha256(path: string, length: number): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { start: 0, end: length - 1 })) h.update(c as Buffer);
  return h.digest('hex');
}

function locate(n: TestNode, handle: DriverHandle): string {
  const data = n.driver.data;
  if (!data) throw new Error('dir has a data port');
  return data.locate(handle).path;
}

async function newVolume(n: TestNode, sizeBytes: number): Promise<DriverHandle> {
  return n.driver.createVolume({ id: newId('volume'), name: 'v', sizeBytes }, sig());
}

/** Polls `check` until it holds (a wait, not a timing assertion: 30 s is only a bound for a hang). */
async function until(check: () => Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + 30_000; !(await check());) {
    if (Date.now() > deadline) throw new Error('condition never held');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('volume bytes streamed from one node to another through the control plane', () => {
  it('copies 64 MiB from sn1 to sn2 byte-exact, with progress, in bounded memory, writing nothing on the control plane', async () => {
    const size = 64 * MiB;
    const src = await newVolume(a, size);
    await fillRandom(locate(a, src), size, { at: 16 * MiB, len: 8 * MiB });
    const dst = await newVolume(b, size + 4 * MiB); // a clone larger than its source
    const before = process.memoryUsage();
    let peak = { rss: before.rss, arrayBuffers: before.arrayBuffers };
    const progress: number[] = [];

    const reader = remoteDataStreams(channels, 'sn1', a.backend);
    const writer = remoteDataStreams(channels, 'sn2', b.backend);
    const data = await reader.openRead(src, sig());
    expect(data).toMatchObject({ sizeBytes: size, format: 'raw' });
    await writer.writeFrom(dst, data, sig(), (n) => {
      progress.push(n);
      const m = process.memoryUsage();
      peak = { rss: Math.max(peak.rss, m.rss), arrayBuffers: Math.max(peak.arrayBuffers, m.arrayBuffers) };
    });

    const out = locate(b, dst);
    expect(await sha256(out, size)).toBe(await sha256(locate(a, src), size));
    const st = await stat(out);
    expect(st.size).toBe(size + 4 * MiB); // the requested size is kept
    expect(await sha256(out, st.size)).not.toBe(await sha256(locate(a, src), size));
    const tail = Buffer.alloc(4 * MiB);
    const fh = await open(out, 'r');
    await fh.read(tail, 0, tail.length, size);
    await fh.close();
    expect(tail.equals(Buffer.alloc(4 * MiB))).toBe(true);
    expect(st.blocks * 512).toBeLessThan(size); // the 8 MiB zero hole stayed a hole
    expect(progress.length).toBeGreaterThan(4);
    expect(progress.at(-1)).toBe(size);
    expect(progress).toEqual([...progress].sort((x, y) => x - y));
    const rssDelta = (peak.rss - before.rss) / MiB;
    const bufDelta = (peak.arrayBuffers - before.arrayBuffers) / MiB;
    // Both nodes run in this process too, so this counts their buffers as well: still far below the volume's size.
    console.log(`64 MiB streamed node to node: peak RSS +${rssDelta.toFixed(1)} MiB, peak array buffers +${bufDelta.toFixed(1)} MiB`);
    expect(bufDelta).toBeLessThan(48);
    expect(await readdir(cpDataDir)).toEqual([]);
  });

  it('a connection cut mid-stream fails the copy as NODE_UNREACHABLE; a retry overwrites the destination fully', async () => {
    const size = 48 * MiB;
    const src = await newVolume(a, size);
    await fillRandom(locate(a, src), size, { at: 8 * MiB, len: 8 * MiB });
    const dst = await newVolume(b, size);
    await fillWith(locate(b, dst), size, 0xaa); // garbage the copy must replace, holes included

    const data = await remoteDataStreams(channels, 'sn1', a.backend).openRead(src, sig());
    let cut = false;
    const failed = remoteDataStreams(channels, 'sn2', b.backend).writeFrom(dst, data, sig(), (n) => {
      if (!cut && n >= 16 * MiB) {
        cut = true;
        void a.kill(); // sn1 goes away: every connection of it cut
      }
    });
    expect(await codeOf(failed)).toBe('NODE_UNREACHABLE');
    await a.restart();
    // The destination node notices its request was cut and stops writing: nothing left in flight (health is not counted).
    await until(async () => (await bChannel.client.health(sig())).inFlight === 0);

    const again = await remoteDataStreams(channels, 'sn1', a.backend).openRead(src, sig());
    await remoteDataStreams(channels, 'sn2', b.backend).writeFrom(dst, again, sig());
    expect(await sha256(locate(b, dst), size)).toBe(await sha256(locate(a, src), size));
  });

  it('a node found down mid-copy cuts both streams at once with the wait reason, and both nodes stop working on it', async () => {
    const size = 48 * MiB;
    const src = await newVolume(a, size);
    await fillRandom(locate(a, src), size, { at: 0, len: 0 });
    const dst = await newVolume(b, size);
    const data = await remoteDataStreams(channels, 'sn1', a.backend).openRead(src, sig());
    let cut = false;
    const waiting = new StowageError('NODE_UNREACHABLE', 'waiting for node sn2: unreachable since 12:03:10', { node: 'sn2', reason: 'unreachable' });
    const failed = remoteDataStreams(channels, 'sn2', b.backend).writeFrom(dst, data, sig(), (n) => {
      if (!cut && n >= 16 * MiB) {
        cut = true;
        bChannel.abortCalls(waiting); // what the node monitor does once sn2's heartbeats stop
      }
    });
    const err = await failed.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(StowageError);
    expect((err as StowageError).code).toBe('NODE_UNREACHABLE');
    expect((err as StowageError).message).toBe(waiting.message);
    const aChannel = fleet.channels.sn1 as TestChannels;
    await until(async () => (await bChannel.client.health(sig())).inFlight === 0);
    await until(async () => (await aChannel.client.health(sig())).inFlight === 0);
    // Later channels are fresh: the same copy goes through.
    const again = await remoteDataStreams(channels, 'sn1', a.backend).openRead(src, sig());
    await remoteDataStreams(channels, 'sn2', b.backend).writeFrom(dst, again, sig());
    expect(await sha256(locate(b, dst), size)).toBe(await sha256(locate(a, src), size));
  });

  it('an answer from a newer epoch (the node was re-synced while the copy ran) is a late answer: NODE_UNREACHABLE', async () => {
    const src = await newVolume(a, 8 * MiB);
    await fillRandom(locate(a, src), 8 * MiB, { at: 0, len: 0 });
    const dst = await newVolume(b, 8 * MiB);
    const data = await remoteDataStreams(channels, 'sn1', a.backend).openRead(src, sig());
    let bumped = false;
    const late = remoteDataStreams(channels, 'sn2', b.backend).writeFrom(dst, data, sig(), () => {
      if (!bumped) {
        bumped = true;
        void bChannel.client.openEpoch(bChannel.row.epoch + 1, sig());
      }
    });
    expect(await codeOf(late)).toBe('NODE_UNREACHABLE');
    bChannel.row = { ...bChannel.row, epoch: bChannel.row.epoch + 1 }; // the control plane's channel now knows the new epoch
    const again = await remoteDataStreams(channels, 'sn1', a.backend).openRead(src, sig());
    await remoteDataStreams(channels, 'sn2', b.backend).writeFrom(dst, again, sig());
    expect(await sha256(locate(b, dst), 8 * MiB)).toBe(await sha256(locate(a, src), 8 * MiB));
  });

  it('refuses handles that are not the driver\'s and a format the volume does not have, changing nothing', async () => {
    const dst = await newVolume(b, 4 * MiB);
    const writer = remoteDataStreams(channels, 'sn2', b.backend);
    const bytes = (): VolumeData => ({ stream: Readable.from([Buffer.alloc(MiB, 1)]), sizeBytes: MiB, format: 'raw' });
    for (const handle of [{ id: '../../etc/passwd', format: 'raw' }, { id: newId('volume'), format: '../raw' }, { path: '/etc/passwd' }]) {
      expect(await codeOf(writer.writeFrom(handle, bytes(), sig())), JSON.stringify(handle)).toBe('VALIDATION_FAILED');
      expect(await codeOf(remoteDataStreams(channels, 'sn2', b.backend).openRead(handle, sig()))).toBe('VALIDATION_FAILED');
    }
    expect(await codeOf(writer.writeFrom(dst, { ...bytes(), format: 'qcow2' }, sig()))).toBe('VALIDATION_FAILED');
    expect(await codeOf(remoteDataStreams(channels, 'sn2', b.backend).openRead({ id: newId('volume'), format: 'raw' }, sig()))).toBe('VOLUME_NOT_FOUND');
    expect((await stat(locate(b, dst))).blocks).toBe(0);
  });
});
