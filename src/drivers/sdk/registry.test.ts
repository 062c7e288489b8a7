import { describe, expect, it } from 'vitest';
import { StowageError } from '../../core/errors.js';
import { btrfsDriverFactory } from '../btrfs/btrfs-driver.js';
import { dirDriverFactory } from '../dir/dir-driver.js';
import { tgtDriverFactory } from '../tgt/tgt-driver.js';
import { CAPABILITY_PORTS, type DriverPorts, type PortName } from './ports.js';
import { DriverRegistry } from './registry.js';
import { CAPABILITIES, type BackendReport, type BlockDriver, type Capability, type DriverFactory } from './types.js';

const deps = { runner: { run: () => Promise.reject(new Error('no commands in this test')) }, dataDir: '/nonexistent/stowage-test' };
const signal = new AbortController().signal;

/** Every port, each doing nothing: the registry only checks that a port is there. */
const PORTS: DriverPorts = {
  access: { grant: (_h, g) => Promise.resolve({ protocol: 'file', mode: g.mode }), revoke: () => Promise.resolve(), list: () => Promise.resolve([]) },
  snapshots: { create: () => Promise.resolve({}), delete: () => Promise.resolve() },
  revert: { revert: () => Promise.resolve() },
  clones: { clone: () => Promise.resolve({}) },
  data: { locate: () => ({ path: '/x', format: 'raw' }) },
  exports: { reconcile: () => Promise.resolve({ restored: [], removed: [] }), drift: () => Promise.resolve({ missing: [] }) },
};

/** A tiny fake driver (pure logic: the registry never calls its volume methods). */
function fake(declared: readonly Capability[], ports: readonly PortName[], reported: readonly Capability[] = declared): BlockDriver {
  const report: BackendReport = { totalBytes: 10, freeBytes: 10, usedBytes: 0, capabilities: reported };
  const none = (): Promise<never> => Promise.reject(new Error('not in this test'));
  return {
    scheme: 'fake', kind: 'block', capabilities: new Set(declared),
    probe: () => Promise.resolve(report), createVolume: none, deleteVolume: none, resizeVolume: none, listVolumes: none,
    ...Object.fromEntries(ports.map((p) => [p, PORTS[p]])),
  };
}

function registryOf(driver: BlockDriver): DriverRegistry {
  const factory: DriverFactory = { scheme: 'fake', kind: 'block', description: 'a test driver', create: () => driver };
  return new DriverRegistry([factory]);
}

function errorOf(fn: () => unknown): StowageError {
  try {
    fn();
  } catch (err) {
    if (err instanceof StowageError) return err;
    throw err;
  }
  throw new Error('expected a StowageError');
}

describe('DriverRegistry: declared capabilities and their ports', () => {
  it('refuses a driver that declares a capability without the port it needs, naming both', () => {
    const needing = CAPABILITIES.filter((c) => CAPABILITY_PORTS[c] !== null);
    expect(needing.length).toBeGreaterThan(0);
    for (const cap of needing) {
      const port = CAPABILITY_PORTS[cap];
      const err = errorOf(() => registryOf(fake([cap], [])).create('fake:///x', {}, deps));
      expect(err.code).toBe('INTERNAL');
      expect(err.message).toBe(`driver fake:// declares the ${cap} capability but has no ${String(port)} port`);
      expect(err.details).toEqual({ scheme: 'fake', capability: cap, port });
    }
    expect(CAPABILITY_PORTS['access.chap']).toBe('access');
    expect(CAPABILITY_PORTS['snapshot.offload']).toBe('snapshots');
    expect(CAPABILITY_PORTS['clone.offload']).toBe('clones');
    expect(CAPABILITY_PORTS.revert).toBe('revert');
  });

  it('builds a driver that has the port of each capability it declares; capabilities of the base contract need none', async () => {
    const driver = registryOf(fake(['thin', 'resize', 'format.raw', 'snapshot', 'revert', 'access.chap'], ['snapshots', 'revert', 'access'])).create('fake:///x', {}, deps);
    expect((await driver.probe(signal)).capabilities).toEqual(['thin', 'resize', 'format.raw', 'snapshot', 'revert', 'access.chap']);
    expect(driver.access).toBe(PORTS.access); // ports read through
  });

  it('refuses a probe that reports a capability the driver did not declare (not filtered: the backend shows the bug)', async () => {
    const driver = registryOf(fake(['thin'], [], ['thin', 'quota', 'snapshot'])).create('fake:///x', {}, deps);
    await expect(driver.probe(signal)).rejects.toMatchObject({
      code: 'DRIVER_FAILED',
      message: 'driver fake:// reported capabilities quota, snapshot it does not declare',
      details: { scheme: 'fake', capabilities: ['quota', 'snapshot'] },
    });
  });

  it('refuses a second factory for one scheme', () => {
    const err = errorOf(() => new DriverRegistry([dirDriverFactory, dirDriverFactory]));
    expect(err).toMatchObject({ code: 'INTERNAL', message: 'a driver for dir:// is already registered' });
  });

  it('the shipped drivers declare a port for every capability they may report', () => {
    const registry = new DriverRegistry([dirDriverFactory, btrfsDriverFactory, tgtDriverFactory]);
    const uris = ['dir:///srv/v', 'dir:///srv/v?format=qcow2', 'btrfs:///srv/b', 'tgt://10.99.0.1:3260?backing=dir:///srv/l&control=7', 'tgt://10.99.0.1:3260?backing=btrfs:///srv/b&control=7'];
    for (const uri of uris) {
      const driver = registry.create(uri, {}, deps);
      expect(driver.capabilities.size, uri).toBeGreaterThan(0);
      for (const cap of driver.capabilities) {
        const port = CAPABILITY_PORTS[cap];
        if (port !== null) expect(driver[port], `${uri} ${cap}`).toBeDefined();
      }
    }
    expect(registry.create('btrfs:///srv/b', { quota: 'on' }, deps).capabilities.has('quota')).toBe(true);
    expect(registry.create('btrfs:///srv/b', {}, deps).capabilities.has('quota')).toBe(false);
  });
});
