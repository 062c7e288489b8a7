import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QemuIscsiConnector } from '../../src/agent/connectors/qemu-iscsi-connector.js';
import { QemuVm } from '../../src/agent/hypervisor/qemu-vm.js';
import { newId } from '../../src/core/ids.js';
import type { ConnectionInfo } from '../../src/drivers/sdk/types.js';
import { startLab, type Lab } from '../lab/lab.js';
import { freeTcpPort } from '../lab/ports.js';
import { addTarget, type TestTarget } from './iscsi-fixture.js';
import { captureLogger, startTestVm, type TestVm } from './qemu-fixture.js';

const MiB = 1024 * 1024;
const CHAP_USER = `mig${randomBytes(3).toString('hex')}`;
const CHAP_SECRET = `M1gr-${randomBytes(8).toString('hex')}`;

describe('live migration of a VM with a shared iSCSI disk between two QEMU processes', () => {
  let lab: Lab;
  let dir: string;
  const qemus: TestVm[] = [];
  const vms: QemuVm[] = [];
  let target: TestTarget;
  const log = captureLogger();

  beforeAll(async () => {
    lab = await startLab({ hosts: 0, btrfs: false, xfs: false });
    dir = mkdtempSync(join(tmpdir(), 'stw-agent-mig-'));
    target = await addTarget(lab, { tid: 1, name: 'agent-mig', sizeBytes: 32 * MiB, chap: { user: CHAP_USER, password: CHAP_SECRET } });
  });

  afterAll(async () => {
    for (const vm of vms) await vm.close();
    for (const q of qemus) await q.stop();
    await lab?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('moves the running VM: destination running with the disk attached, source postmigrate', async () => {
    const srcQemu = await startTestVm({ dir, name: 'src' });
    qemus.push(srcQemu);
    const dstQemu = await startTestVm({ dir, name: 'dst', incoming: true });
    qemus.push(dstQemu);
    const src = await QemuVm.open('src', srcQemu.socketPath, { logger: log });
    vms.push(src);
    const dst = await QemuVm.open('dst', dstQemu.socketPath, { logger: log });
    vms.push(dst);
    expect((await dst.status()).status).toBe('inmigrate');

    const volumeId = newId('volume');
    const info: ConnectionInfo = { protocol: 'iscsi', portal: lab.loopbackPortal, iqn: target.iqn, lun: 1, chapUser: CHAP_USER, chapSecret: CHAP_SECRET, mode: 'rw' };
    const connector = new QemuIscsiConnector({ initiatorName: `iqn.2024-01.lab.stowage.client:mig-${String(process.pid)}` });
    await connector.connect(src, volumeId, info, 'rw');
    await src.cont();
    expect(await src.status()).toEqual({ status: 'running', running: true });
    await connector.connect(dst, volumeId, info, 'rw');

    const resumed = dst.client.eventWaiter('RESUME');
    try {
      const uri = `tcp:127.0.0.1:${String(await freeTcpPort('127.0.0.1'))}`;
      await dst.migrateIncoming(uri);
      await src.migrate(uri);
      const done = await src.waitMigration({ timeoutMs: 60_000 });
      expect(done.status).toBe('completed');
      expect(done.totalTimeMs).toBeGreaterThan(0);
      await resumed.wait(30_000);
    } finally {
      resumed.dispose();
    }

    expect(await dst.status()).toEqual({ status: 'running', running: true });
    expect((await src.status()).status).toBe('postmigrate');
    expect((await dst.migrationInfo()).status).toBe('completed');
    expect((await dst.listAttached())).toMatchObject([{ volumeId, state: 'attached', protocol: 'iscsi', sizeBytes: 32 * MiB }]);

    // The source lets go of the disk after the handover; the destination keeps it.
    await connector.disconnect(src, volumeId);
    expect(await src.listAttached()).toEqual([]);
    expect((await dst.listAttached())[0]?.state).toBe('attached');
    for (const line of log.lines) expect(line).not.toContain(CHAP_SECRET);
  });
});
