import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient } from '../../src/agent/qmp-client.js';
import { QmpError } from '../../src/agent/qmp-error.js';
import { startTestVm, type TestVm } from './qemu-fixture.js';

describe('QmpClient against a real QEMU', () => {
  let dir: string;
  let qemu: TestVm;
  let client: QmpClient;
  const others: TestVm[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stw-qmp-'));
    qemu = await startTestVm({ dir, name: 'qmp1' });
    client = await QmpClient.connect({ socketPath: qemu.socketPath });
  });

  afterAll(async () => {
    await client?.close();
    await qemu?.stop();
    for (const vm of others) await vm.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reads the greeting and runs commands', async () => {
    expect(client.greeting?.version.major).toBeGreaterThanOrEqual(7);
    expect(await client.execute('query-status')).toMatchObject({ status: 'prelaunch', running: false });
    expect(await client.execute('query-kvm')).toMatchObject({ enabled: qemu.accel === 'kvm', present: true });
  });

  it('keeps many overlapping commands apart', async () => {
    const cmds = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? 'query-status' : i % 3 === 1 ? 'query-name' : 'query-version'));
    const results = await Promise.all(cmds.map((c) => client.execute(c)));
    results.forEach((r, i) => {
      if (cmds[i] === 'query-status') expect(r).toHaveProperty('status');
      else if (cmds[i] === 'query-name') expect(r).toEqual({});
      else expect(r).toHaveProperty('qemu');
    });
  });

  it('reports QEMU errors as QmpError with class and description', async () => {
    const err = await client.execute('no-such-command').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect(err).toMatchObject({ qmpClass: 'CommandNotFound', command: 'no-such-command' });
    const err2 = await client.execute('device_del', { id: 'nope' }).catch((e: unknown) => e);
    expect(err2).toMatchObject({ qmpClass: 'DeviceNotFound', desc: "Device 'nope' not found" });
  });

  it('receives events interleaved with replies', async () => {
    const events: string[] = [];
    const off = client.on('event', (e) => events.push(e.event));
    const resumed = client.eventWaiter('RESUME');
    await client.execute('cont');
    await resumed.wait(10_000);
    resumed.dispose();
    await Promise.all([client.execute('stop'), client.waitForEvent('STOP', () => true, 10_000)]);
    off();
    expect(events).toEqual(expect.arrayContaining(['RESUME', 'STOP']));
    expect(await client.execute('query-status')).toMatchObject({ status: 'paused', running: false });
  });

  it('cannot open a second connection while the first holds the monitor, and can after it is closed', async () => {
    await expect(QmpClient.connect({ socketPath: qemu.socketPath, connectTimeoutMs: 500 })).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    await client.close();
    const second = await QmpClient.connect({ socketPath: qemu.socketPath });
    expect(await second.execute('query-status')).toHaveProperty('status');
    await second.close();
    await client.reconnect();
    expect(client.connected).toBe(true);
  });

  it('notices when QEMU dies: listeners hear it, calls fail with BACKEND_UNAVAILABLE', async () => {
    const victim = await startTestVm({ dir, name: 'qmp-victim' });
    others.push(victim);
    const c = await QmpClient.connect({ socketPath: victim.socketPath });
    const closed = new Promise<void>((resolve) => c.on('close', () => { resolve(); }));
    const waiting = c.waitForEvent('NEVER', () => true, 30_000).catch((e: unknown) => e); // handled at once: it rejects as QEMU dies
    await victim.stop();
    await closed;
    expect(await waiting).toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    await expect(c.execute('query-status')).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    await expect(c.reconnect()).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
  });
});
