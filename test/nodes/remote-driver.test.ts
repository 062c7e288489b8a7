import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StowageError } from '../../src/core/errors.js';
import { newId } from '../../src/core/ids.js';
import { VOLUME_FORMATS } from '../../src/core/states.js';
import { portOf } from '../../src/drivers/sdk/ports.js';
import type { BlockDriver } from '../../src/drivers/sdk/types.js';
import { SpawnCommandRunner, type CommandRunner, type RunOptions, type RunResult } from '../../src/system/command-runner.js';
import { forgetQemuImgAvailability } from '../../src/system/qemu-img.js';
import { describeBlockDriverConformance, qemuIoDataAccess } from '../drivers/conformance.js';
import { remoteBackend, startTestNode, TestChannels, testIdentities, type TestNode } from './node-kit.js';

const runner = new SpawnCommandRunner();
const sig = (): AbortSignal => new AbortController().signal;

async function errorOf(promise: Promise<unknown>): Promise<StowageError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof StowageError) return err;
    throw err;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

for (const format of VOLUME_FORMATS) {
  describeBlockDriverConformance(`dir (${format}) on a storage node, over mutual TLS`, async () => {
    const node = await startTestNode(runner);
    const channels = new TestChannels(node, await testIdentities(runner));
    await channels.sync();
    const dir = await mkdtemp(join(tmpdir(), 'stowage-remote-dir-'));
    const controlDir = await mkdtemp(join(tmpdir(), 'stowage-remote-cp-'));
    const { driver, local } = remoteBackend(channels, runner, controlDir, `dir://${dir}?format=${format}`, channels.row.id);
    return {
      driver,
      // The node is this machine: the kit reads and writes the bytes where the node's driver keeps them.
      data: qemuIoDataAccess(local, runner),
      cleanup: async () => {
        channels.close();
        await node.stop();
        await rm(dir, { recursive: true, force: true });
        await rm(controlDir, { recursive: true, force: true });
      },
    };
  }, { claims: ['snapshot', 'clone', 'revert'] });
}

/**
 * A real runner with a gate: while armed, a command named `gated` waits until the gate opens or its
 * signal aborts (recording which), so a call can be held on the node while the test acts.
 */
class GatedRunner implements CommandRunner {
  private armed: { cmd: string; open: Promise<void>; release: () => void } | undefined;
  entered = 0;
  abortedWhileHeld = 0;
  constructor(private readonly inner: CommandRunner) {}

  arm(cmd: string): void {
    let release = (): void => undefined;
    const open = new Promise<void>((r) => { release = r; });
    this.armed = { cmd, open, release };
  }

  release(): void {
    const a = this.armed;
    this.armed = undefined;
    a?.release();
  }

  async run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const gate = this.armed;
    if (gate && cmd === gate.cmd) {
      this.entered++;
      const signal = options.signal;
      await new Promise<void>((resolve) => {
        void gate.open.then(resolve);
        signal?.addEventListener('abort', () => { this.abortedWhileHeld++; resolve(); }, { once: true });
      });
    }
    return this.inner.run(cmd, args, options);
  }
}

/**
 * Arms the gate on qemu-img and drops the runner's remembered qemu-img answer, so the next probe on
 * the node runs `qemu-img --version` (the one command a probe spawns, once per runner every 30 s)
 * and is held there.
 */
function holdNextProbe(gated: GatedRunner): void {
  gated.arm('qemu-img');
  forgetQemuImgAvailability(gated);
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe('remote driver over a node', () => {
  const gated = new GatedRunner(runner);
  let node: TestNode;
  let channels: TestChannels;
  let dir = '';
  let controlDir = '';
  let driver: BlockDriver;

  beforeAll(async () => {
    node = await startTestNode(gated);
    channels = new TestChannels(node, await testIdentities(runner));
    await channels.sync();
    dir = await mkdtemp(join(tmpdir(), 'stowage-remote-dir-'));
    controlDir = await mkdtemp(join(tmpdir(), 'stowage-remote-cp-'));
    driver = remoteBackend(channels, runner, controlDir, `dir://${dir}?format=qcow2`, channels.row.id).driver;
  });
  afterAll(async () => {
    gated.release();
    channels.close();
    await node.stop();
    await rm(dir, { recursive: true, force: true });
    await rm(controlDir, { recursive: true, force: true });
  });

  it('looks like the local driver: scheme, kind, capabilities, ports; names its node; no local dir', async () => {
    expect(driver.scheme).toBe('dir');
    expect(driver.kind).toBe('block');
    for (const p of ['access', 'snapshots', 'revert', 'clones', 'data'] as const) expect(portOf(driver, p), p).toBeDefined();
    expect(portOf(driver, 'exports')).toBeUndefined();
    expect(driver.localDir).toBeUndefined();
    await driver.listVolumes(sig());
    expect(driver.node).toBe(node.name);
  });

  it('errors keep their codes, with the node named; command failures are DRIVER_FAILED', async () => {
    const id = newId('volume');
    const h = await driver.createVolume({ id, name: 'v', sizeBytes: 8 << 20 }, sig());
    const shrink = await errorOf(driver.resizeVolume(h, 4 << 20, sig()));
    expect(shrink.code).toBe('SHRINK_NOT_SUPPORTED');
    expect(shrink.message).toMatch(/^node node-test: /);
    expect(shrink.details.node).toBe('node-test');
    expect((await errorOf(driver.createVolume({ id, name: 'v', sizeBytes: 16 << 20 }, sig()))).code).toBe('INVALID_STATE');
    expect((await errorOf(driver.createVolume({ id: newId('volume'), name: 'v', sizeBytes: 0 }, sig()))).code).toBe('INVALID_SIZE');
    // A qcow2 image that is not one: qemu-img fails on the node, which answers DRIVER_FAILED with the command.
    await writeFile(join(dir, `${id}.qcow2`), Buffer.alloc(8 << 20, 0x5a));
    const broken = await errorOf(driver.resizeVolume(h, 16 << 20, sig()));
    expect(broken.code).toBe('DRIVER_FAILED');
    expect(broken.message).toMatch(/^node node-test: .*qemu-img/);
    await driver.deleteVolume(h, sig());
  });

  it('data.locate is refused: a node backend has no path here', () => {
    const data = portOf(driver, 'data');
    expect(() => data?.locate({ id: newId('volume'), format: 'raw' })).toThrow(expect.objectContaining({ code: 'CAPABILITY_MISSING', message: expect.stringMatching(/stream; they have no path here/) as string }) as Error);
  });

  it('refuses a method that is not callable remotely, and malformed calls, before any driver runs', async () => {
    const backend = { id: 'bk-x', name: 'x', uri: `dir://${dir}`, options: {} };
    const call = (c: unknown): Promise<unknown> => channels.client.call(c as Parameters<TestChannels['client']['call']>[0], channels.row.epoch, sig());
    expect((await errorOf(call({ backend, target: 'data', method: 'locate', args: [{}] }))).code).toBe('FORBIDDEN');
    expect((await errorOf(call({ backend, target: 'driver', method: 'close', args: [] }))).code).toBe('FORBIDDEN');
    expect((await errorOf(call({ backend, target: 'driver', method: 'constructor', args: [] }))).code).toBe('FORBIDDEN');
    expect((await errorOf(call({ backend, target: 'driver', method: 'resizeVolume', args: [{}] }))).code).toBe('VALIDATION_FAILED');
    expect((await errorOf(call({ backend, target: 'driver', method: 'resizeVolume', args: [{}, '1'] }))).code).toBe('VALIDATION_FAILED');
    expect((await errorOf(call({ backend: { ...backend, options: { a: 1 } }, target: 'driver', method: 'probe', args: [] }))).code).toBe('VALIDATION_FAILED');
    expect((await errorOf(call({ backend, target: 'nowhere', method: 'probe', args: [] }))).code).toBe('VALIDATION_FAILED');
    expect((await errorOf(call({ backend, target: 'driver', method: 'probe', args: [], extra: 1 }))).code).toBe('VALIDATION_FAILED');
  });

  it('a call under an epoch older than the node\'s is refused with STALE_EPOCH', async () => {
    const other = new TestChannels(node, await testIdentities(runner));
    other.row = channels.row;
    await other.sync(); // another connection opened a newer epoch on the node
    const stale = await errorOf(driver.listVolumes(sig()));
    expect(stale.code).toBe('STALE_EPOCH');
    other.close();
    channels.row = other.row;
    await driver.listVolumes(sig());
  });

  it('an answer from a newer epoch than the call was made in (a reconnect mid-call) is discarded as NODE_UNREACHABLE', async () => {
    holdNextProbe(gated);
    const entered = gated.entered;
    const held = errorOf(driver.probe(sig()));
    await until('the probe to reach qemu-img on the node', () => gated.entered > entered);
    const other = new TestChannels(node, await testIdentities(runner));
    other.row = channels.row;
    await other.sync();
    gated.release();
    const late = await held;
    expect(late.code).toBe('NODE_UNREACHABLE');
    expect(late.message).toMatch(/answer is discarded/);
    other.close();
    channels.row = other.row;
    await driver.probe(sig());
  });

  it('after a node restart, its answers are discarded until the control plane syncs it again', async () => {
    await node.restart();
    const late = await errorOf(driver.listVolumes(sig()));
    expect(late.code).toBe('NODE_UNREACHABLE');
    expect(late.details.reason).toBe('unreachable');
    await channels.sync();
    expect(channels.row.boot_id).toBe(node.server.bootId);
    await driver.listVolumes(sig());
  });

  it('aborting the signal cancels the call on the node', async () => {
    holdNextProbe(gated);
    const entered = gated.entered;
    const aborted = gated.abortedWhileHeld;
    const ac = new AbortController();
    const call = driver.probe(ac.signal).then(() => 'resolved', () => 'rejected');
    await until('the probe to reach qemu-img on the node', () => gated.entered > entered);
    ac.abort();
    expect(await call).toBe('rejected');
    await until('the node to see the abort', () => gated.abortedWhileHeld > aborted);
    gated.release();
  });

  it('never logs a CHAP secret, though it logs the call', async () => {
    const secret = `chap-secret-${newId('grant')}`;
    const h = await driver.createVolume({ id: newId('volume'), name: 'v', sizeBytes: 4 << 20 }, sig());
    const info = await portOf(driver, 'access')?.grant(h, { host: { name: 'h1', addresses: ['127.0.0.1'] }, mode: 'rw', chap: { user: 'u1', secret } }, sig());
    expect(info?.protocol).toBe('file');
    await driver.deleteVolume(h, sig());
    const log = node.log();
    expect(log).toMatch(/"target":"access","method":"grant"/);
    expect(log).toContain('"chap":{"user":"u1","secret":"[redacted]"}');
    expect(log).not.toContain(secret);
  });

  it('measures one call round trip (printed, not asserted)', async () => {
    await driver.listVolumes(sig());
    const n = 20;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await driver.listVolumes(sig());
    const ms = (performance.now() - t0) / n;
    console.log(`remote driver: listVolumes round trip over mutual TLS on loopback, mean of ${n}: ${ms.toFixed(2)} ms`);
  });
});
