import { getEventListeners } from 'node:events';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { requirePort } from '../drivers/sdk/ports.js';
import type { BlockDriver } from '../drivers/sdk/types.js';
import { OperationRepository } from '../store/operation-repository.js';
import { openStore, type Store } from '../store/store.js';
import { LeaseLostError } from './lease-lost-error.js';
import { OperationLease } from './operation-lease.js';

const logger = pino({ level: 'silent' });

/** A driver with one port, recording each call that reaches it (pure logic: no backend needed). */
function fakeDriver(calls: string[]): BlockDriver {
  const none = (what: string) => (): Promise<never> => Promise.reject(new Error(`${what} is not part of this test`));
  return {
    scheme: 'fake',
    kind: 'block',
    capabilities: new Set(['access.address']),
    probe: none('probe'),
    createVolume: none('createVolume'),
    deleteVolume: (handle) => { calls.push(`delete:${String(handle.id)}`); return Promise.resolve(); },
    resizeVolume: none('resizeVolume'),
    listVolumes: none('listVolumes'),
    access: {
      grant: (_h, g) => { calls.push('grant'); return Promise.resolve({ protocol: 'file', path: '/x', mode: g.mode }); },
      revoke: (h) => { calls.push(`revoke:${String(h.id)}`); return Promise.resolve(); },
      list: () => { calls.push('list'); return Promise.resolve([]); },
    },
  };
}

describe('OperationLease.guard', () => {
  let store: Store;
  let lease: OperationLease;
  const host = { name: 'h', addresses: ['10.99.0.2'] };
  const signal = new AbortController().signal;

  beforeEach(async () => {
    store = await openStore('sqlite::memory:');
    lease = new OperationLease(store, new OperationRepository(), 'op-test', { owner: 'me', epoch: 1 }, 60_000, Date.now() + 60_000, logger, new AbortController().signal);
  });
  afterEach(async () => {
    lease.stop();
    await store.close();
  });

  it('checks the lease on the driver\'s own methods and on its ports, however the port is reached', async () => {
    const calls: string[] = [];
    const guarded = lease.guard(fakeDriver(calls));
    await guarded.deleteVolume({ id: 'a' }, signal);
    await guarded.access?.revoke({ id: 'b' }, host, signal);
    await requirePort(guarded, 'access', 'local').revoke({ id: 'c' }, host, signal);
    expect(guarded.access).toBe(guarded.access); // one guard per port object
    expect(guarded.capabilities.has('access.address')).toBe(true); // built-ins keep working through it
    expect(calls).toEqual(['delete:a', 'revoke:b', 'revoke:c']);

    lease.lose('a test took it');
    const port = requirePort(guarded, 'access', 'local');
    expect(() => guarded.deleteVolume({ id: 'd' }, signal)).toThrow(LeaseLostError);
    expect(() => port.revoke({ id: 'e' }, host, signal)).toThrow(LeaseLostError);
    expect(() => guarded.access?.list(signal)).toThrow(LeaseLostError);
    expect(() => requirePort(guarded, 'access', 'local').grant({ id: 'f' }, { host, mode: 'rw' }, signal)).toThrow(LeaseLostError);
    expect(calls).toEqual(['delete:a', 'revoke:b', 'revoke:c']);
    expect(guarded.scheme).toBe('fake'); // reading a field is no driver call
  });

  it('leaves frozen data as it is (a proxy may not stand in for a frozen property)', () => {
    const config = Object.freeze({ nested: Object.freeze({ port: 3260 }) });
    const guarded = lease.guard({ config });
    expect(guarded.config.nested).toBe(config.nested);
  });
});

describe('OperationLease and the engine\'s shutdown signal', () => {
  it('follows the shutdown while it runs, and leaves no listener on it once stopped (one lease per operation, for the process\'s life)', async () => {
    const store = await openStore('sqlite::memory:');
    try {
      const shutdown = new AbortController();
      const listeners = (): number => getEventListeners(shutdown.signal, 'abort').length;
      const make = (): OperationLease => new OperationLease(store, new OperationRepository(), 'op-test', { owner: 'me', epoch: 1 }, 60_000, Date.now() + 60_000, logger, shutdown.signal);
      for (let i = 0; i < 50; i++) make().stop();
      expect(listeners()).toBe(0);
      const running = make();
      expect(listeners()).toBe(1);
      shutdown.abort(new Error('engine stopped past its drain deadline'));
      expect(running.signal.aborted).toBe(true);
      running.stop();
    } finally {
      await store.close();
    }
  });
});
