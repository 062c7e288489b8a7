import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileConnector } from '../../src/agent/connectors/file-connector.js';
import { QemuIscsiConnector } from '../../src/agent/connectors/qemu-iscsi-connector.js';
import { QemuVm } from '../../src/agent/hypervisor/qemu-vm.js';
import { parseNamedBlockNodes, parseQueryBlock } from '../../src/agent/hypervisor/attached-volumes.js';
import { qemuNamesFor } from '../../src/agent/hypervisor/qemu-names.js';
import { QmpError } from '../../src/agent/qmp-error.js';
import { VmDirectory } from '../../src/agent/vm-directory.js';
import { StowageError } from '../../src/core/errors.js';
import { newId } from '../../src/core/ids.js';
import type { ConnectionInfo } from '../../src/drivers/sdk/types.js';
import { SpawnCommandRunner } from '../../src/system/command-runner.js';
import { startLab, type Lab } from '../lab/lab.js';
import { freeTcpPort } from '../lab/ports.js';
import { addTarget, type TestTarget } from './iscsi-fixture.js';
import { captureLogger, startTestVm, type TestVm } from './qemu-fixture.js';

const MiB = 1024 * 1024;
const INITIATOR = `iqn.2024-01.lab.stowage.client:agent-${String(process.pid)}`;
const CHAP_USER = `agent${randomBytes(3).toString('hex')}`;
const CHAP_SECRET = `S3cr3t-${randomBytes(8).toString('hex')}`;

describe('QemuVm against a real QEMU and a real tgtd', () => {
  let lab: Lab;
  let dir: string;
  let qemu: TestVm;
  let vm: QemuVm;
  let target: TestTarget;
  const log = captureLogger();

  beforeAll(async () => {
    lab = await startLab({ hosts: 0, btrfs: false, xfs: false });
    dir = mkdtempSync(join(tmpdir(), 'stw-agent-'));
    target = await addTarget(lab, { tid: 1, name: 'agent-chap', sizeBytes: 64 * MiB, chap: { user: CHAP_USER, password: CHAP_SECRET } });
    qemu = await startTestVm({ dir, name: 'vm1' });
    const socket = await new VmDirectory(dir).socketFor('vm1');
    vm = await QemuVm.open('vm1', socket, { logger: log });
  });

  afterAll(async () => {
    await vm?.close();
    await qemu?.stop();
    await lab?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const iscsiInfo = (secret = CHAP_SECRET): ConnectionInfo => ({
    protocol: 'iscsi', portal: lab.loopbackPortal, iqn: target.iqn, lun: 1, chapUser: CHAP_USER, chapSecret: secret, mode: 'rw',
  });

  async function ourNodes(): Promise<string[]> {
    return parseNamedBlockNodes(await vm.client.execute('query-named-block-nodes', { flat: true })).map((n) => n.nodeName).filter((n) => n.startsWith('stw-'));
  }

  it('finds the VM socket in the VM directory', async () => {
    const vms = await new VmDirectory(dir).list();
    expect([...vms.keys()]).toEqual(['vm1']);
    expect(vms.get('vm1')).toBe(qemu.socketPath);
  });

  it('attaches a raw file, shows it in query-block with our device id, and detaches it completely', async () => {
    const volumeId = newId('volume');
    const file = join(dir, `${volumeId}.raw`);
    writeFileSync(file, '');
    truncateSync(file, 16 * MiB);
    const connector = new FileConnector({ allowedRoots: [dir] });
    const attached = await connector.connect(vm, volumeId, { protocol: 'file', path: file, mode: 'rw' }, 'rw');
    expect(attached).toMatchObject({ volumeId, state: 'attached', deviceId: `stw-dev-${volumeId}`, nodeName: `stw-${volumeId}`, protocol: 'file', format: 'raw', readOnly: false, sizeBytes: 16 * MiB });

    const backends = parseQueryBlock(await vm.client.execute('query-block'));
    expect(backends).toContainEqual({ qdev: `stw-dev-${volumeId}`, nodeName: `stw-${volumeId}` });

    await connector.disconnect(vm, volumeId);
    expect(await vm.listAttached()).toEqual([]);
    expect(parseQueryBlock(await vm.client.execute('query-block')).filter((b) => b.qdev?.includes(volumeId))).toEqual([]);
    expect(await ourNodes()).toEqual([]); // blockdev-del of both nodes succeeded
  });

  it('attaches a qcow2 file read-only through the file connector', async () => {
    const volumeId = newId('volume');
    const file = join(dir, `${volumeId}.qcow2`);
    await new SpawnCommandRunner().run('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(32 * MiB)]);
    const connector = new FileConnector({ allowedRoots: [dir] });
    const attached = await connector.connect(vm, volumeId, { protocol: 'file', path: file, mode: 'rw' }, 'ro');
    expect(attached).toMatchObject({ state: 'attached', format: 'qcow2', protocol: 'file', readOnly: true, sizeBytes: 32 * MiB });
    await connector.disconnect(vm, volumeId);
    expect(await vm.listAttached()).toEqual([]);
  });

  it('refuses a file outside the allowed roots', async () => {
    const connector = new FileConnector({ allowedRoots: [join(dir, 'nope')] });
    const file = join(dir, `${newId('volume')}.raw`);
    writeFileSync(file, '');
    await expect(connector.connect(vm, newId('volume'), { protocol: 'file', path: file, mode: 'rw' }, 'rw')).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  });

  it('attaches an iSCSI LUN with CHAP, and the secret appears in no log line, result or error', async () => {
    const volumeId = newId('volume');
    const connector = new QemuIscsiConnector({ initiatorName: INITIATOR });
    const attached = await connector.connect(vm, volumeId, iscsiInfo(), 'rw');
    const names = qemuNamesFor(volumeId);
    expect(attached).toMatchObject({
      volumeId, state: 'attached', deviceId: names.device, nodeName: names.node, protocolNodeName: names.protocolNode,
      secretId: names.secret, protocol: 'iscsi', format: 'raw', readOnly: false, sizeBytes: 64 * MiB,
    });
    const listed = await vm.listAttached();
    expect(listed.map((v) => v.volumeId)).toEqual([volumeId]);
    expect(JSON.stringify(listed)).not.toContain(CHAP_SECRET);

    // Attaching again is a no-op that reports the same volume.
    expect(await connector.connect(vm, volumeId, iscsiInfo(), 'rw')).toEqual(attached);

    await connector.disconnect(vm, volumeId);
    expect(await vm.listAttached()).toEqual([]);
    expect(log.lines.some((l) => l.includes('object-add'))).toBe(true); // the secret command was logged...
    for (const line of log.lines) expect(line).not.toContain(CHAP_SECRET); // ...without the secret
  });

  it('moves real data through the attached LUN (a blockdev-backup of the iSCSI disk matches the target file)', async () => {
    const volumeId = newId('volume');
    const pattern = Buffer.alloc(64 * 1024, `stowage-agent-${volumeId}-`);
    const fd = openSync(target.lunPath, 'r+');
    writeSync(fd, pattern, 0, pattern.length, 3 * MiB);
    closeSync(fd);
    await vm.attachIscsi({ volumeId, portal: lab.loopbackPortal, iqn: target.iqn, lun: 1, chapUser: CHAP_USER, chapSecret: CHAP_SECRET, initiatorName: INITIATOR, readOnly: true });
    const copy = join(dir, `copy-${volumeId}.raw`);
    writeFileSync(copy, '');
    truncateSync(copy, target.sizeBytes);
    const jobId = `job-${volumeId}`;
    await vm.client.execute('blockdev-add', { driver: 'file', 'node-name': 'copy-proto', filename: copy });
    await vm.client.execute('blockdev-add', { driver: 'raw', 'node-name': 'copy', file: 'copy-proto' });
    const done = vm.client.eventWaiter('BLOCK_JOB_COMPLETED', (e) => e.data.device === jobId);
    try {
      await vm.client.execute('blockdev-backup', { 'job-id': jobId, device: `stw-${volumeId}`, target: 'copy', sync: 'full' });
      const ev = await done.wait(60_000);
      expect(ev.data.error).toBeUndefined();
      expect(ev.data.offset).toBe(target.sizeBytes);
    } finally {
      done.dispose();
    }
    await vm.client.execute('blockdev-del', { 'node-name': 'copy' });
    await vm.client.execute('blockdev-del', { 'node-name': 'copy-proto' });
    const copied = readFileSync(copy);
    expect(copied.subarray(3 * MiB, 3 * MiB + pattern.length).equals(pattern)).toBe(true);
    expect(copied.equals(readFileSync(target.lunPath))).toBe(true);
    await vm.detach(volumeId);
    expect(await vm.listAttached()).toEqual([]);
  });

  it('fails with a clear QmpError on a wrong CHAP secret and leaves nothing behind', async () => {
    const volumeId = newId('volume');
    const wrong = `Wr0ng-${randomBytes(8).toString('hex')}`;
    const connector = new QemuIscsiConnector({ initiatorName: INITIATOR });
    const err = await connector.connect(vm, volumeId, iscsiInfo(wrong), 'rw').then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    const qe = err as QmpError;
    expect(qe.command).toBe('blockdev-add');
    expect(qe.code).toBe('DRIVER_FAILED');
    expect(qe.desc).toMatch(/login|auth/i);
    expect(qe.message).not.toContain(wrong);
    expect(JSON.stringify(qe.details)).not.toContain(wrong);
    expect(await vm.listAttached()).toEqual([]); // the secret object was rolled back
    for (const line of log.lines) {
      expect(line).not.toContain(wrong);
      expect(line).not.toContain(CHAP_SECRET);
    }
  });

  it('detaching twice, or a volume never attached, is fine', async () => {
    const volumeId = newId('volume');
    await vm.attachIscsi({ volumeId, portal: lab.loopbackPortal, iqn: target.iqn, lun: 1, chapUser: CHAP_USER, chapSecret: CHAP_SECRET, initiatorName: INITIATOR, readOnly: true });
    expect((await vm.listAttached())[0]).toMatchObject({ volumeId, readOnly: true, state: 'attached' });
    await vm.detach(volumeId);
    await vm.detach(volumeId);
    await vm.detach(newId('volume'));
    expect(await vm.listAttached()).toEqual([]);
  });

  it('completes a detach interrupted after device_del', async () => {
    const volumeId = newId('volume');
    const names = qemuNamesFor(volumeId);
    await vm.attachIscsi({ volumeId, portal: lab.loopbackPortal, iqn: target.iqn, lun: 1, chapUser: CHAP_USER, chapSecret: CHAP_SECRET, initiatorName: INITIATOR, readOnly: false });
    await vm.client.execute('device_del', { id: names.device }); // the "crash" happens here
    await vm.client.waitForEvent('DEVICE_DELETED', (e) => e.data.device === names.device, 10_000).catch(() => undefined);
    expect((await vm.listAttached())[0]).toMatchObject({ volumeId, state: 'partial', deviceId: undefined, nodeName: names.node, secretId: names.secret });
    await vm.detach(volumeId);
    expect(await vm.listAttached()).toEqual([]);
    expect(await ourNodes()).toEqual([]);
  });

  it('completes a detach interrupted after the format node was deleted', async () => {
    const volumeId = newId('volume');
    const names = qemuNamesFor(volumeId);
    await vm.attachIscsi({ volumeId, portal: lab.loopbackPortal, iqn: target.iqn, lun: 1, chapUser: CHAP_USER, chapSecret: CHAP_SECRET, initiatorName: INITIATOR, readOnly: false });
    const gone = vm.client.waitForEvent('DEVICE_DELETED', (e) => e.data.device === names.device, 10_000);
    await vm.client.execute('device_del', { id: names.device });
    await gone;
    await vm.client.execute('blockdev-del', { 'node-name': names.node });
    expect((await vm.listAttached())[0]).toMatchObject({ state: 'partial', nodeName: undefined, protocolNodeName: names.protocolNode });
    await vm.detach(volumeId);
    expect(await vm.listAttached()).toEqual([]);
  });

  it('finishes an attach interrupted after the secret and protocol node were added', async () => {
    const volumeId = newId('volume');
    const names = qemuNamesFor(volumeId);
    await vm.client.execute('object-add', { 'qom-type': 'secret', id: names.secret, data: CHAP_SECRET }, { secrets: [CHAP_SECRET] });
    await vm.client.execute('blockdev-add', {
      driver: 'iscsi', 'node-name': names.protocolNode, transport: 'tcp', portal: lab.loopbackPortal, target: target.iqn, lun: 1,
      user: CHAP_USER, 'password-secret': names.secret, 'initiator-name': INITIATOR,
    });
    expect((await vm.listAttached())[0]).toMatchObject({ state: 'partial', deviceId: undefined });
    const attached = await vm.attachIscsi({ volumeId, portal: lab.loopbackPortal, iqn: target.iqn, lun: 1, chapUser: CHAP_USER, chapSecret: CHAP_SECRET, initiatorName: INITIATOR, readOnly: false });
    expect(attached.state).toBe('attached');
    await vm.detach(volumeId);
    expect(await vm.listAttached()).toEqual([]);
  });

  it('handles concurrent attaches and detaches, including two attaches of one volume', async () => {
    const ids = [newId('volume'), newId('volume'), newId('volume')];
    const files = ids.map((id) => {
      const f = join(dir, `${id}.raw`);
      writeFileSync(f, '');
      truncateSync(f, 8 * MiB);
      return f;
    });
    const attach = (i: number): Promise<unknown> => vm.attachFile({ volumeId: ids[i] ?? '', path: files[i] ?? '', format: 'raw', readOnly: false });
    const [first, again] = await Promise.all([attach(0), attach(0), attach(1), attach(2)]);
    expect(again).toEqual(first);
    const listed = await vm.listAttached();
    expect(listed.map((v) => v.volumeId).sort()).toEqual([...ids].sort());
    expect(listed.every((v) => v.state === 'attached')).toBe(true);
    await Promise.all([...ids, ids[0] ?? ''].map((id) => vm.detach(id)));
    expect(await vm.listAttached()).toEqual([]);
    expect(await ourNodes()).toEqual([]);
  });

  it('refuses to re-attach an attached volume in another mode', async () => {
    const volumeId = newId('volume');
    const file = join(dir, `${volumeId}.raw`);
    writeFileSync(file, '');
    truncateSync(file, MiB);
    await vm.attachFile({ volumeId, path: file, format: 'raw', readOnly: false });
    await expect(vm.attachFile({ volumeId, path: file, format: 'raw', readOnly: true })).rejects.toMatchObject({ code: 'INVALID_STATE' });
    await vm.detach(volumeId);
    expect(await vm.listAttached()).toEqual([]);
  });

  it('fails fast and cleanly when nothing listens on the portal', async () => {
    const volumeId = newId('volume');
    const port = await freeTcpPort('127.0.0.1');
    const err = await vm.attachIscsi({ volumeId, portal: `127.0.0.1:${String(port)}`, iqn: target.iqn, lun: 1, chapUser: CHAP_USER, chapSecret: CHAP_SECRET, initiatorName: INITIATOR, readOnly: false })
      .then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect((err as QmpError).desc).toMatch(/connect/i);
    expect(await vm.listAttached()).toEqual([]);
  });

  it('reconnects when the QMP connection was dropped', async () => {
    await vm.client.close();
    expect(vm.client.connected).toBe(false);
    expect(await vm.status()).toEqual({ status: 'prelaunch', running: false });
    expect(vm.client.connected).toBe(true);
  });

  it('rejects an attach with a read-only grant in rw mode, before touching QEMU', async () => {
    const connector = new QemuIscsiConnector({ initiatorName: INITIATOR });
    const err = await connector.connect(vm, newId('volume'), { ...iscsiInfo(), mode: 'ro' }, 'rw').then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(StowageError);
    expect((err as StowageError).code).toBe('INVALID_STATE');
    expect(await vm.listAttached()).toEqual([]);
  });
});

describe('QemuVm when an unplug never completes (virtio-blk-pci without a guest)', () => {
  let dir: string;
  let qemu: TestVm;
  let vm: QemuVm;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stw-agent-blk-'));
    qemu = await startTestVm({ dir, name: 'vmblk', extraArgs: ['-device', 'pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1'] });
    vm = await QemuVm.open('vmblk', qemu.socketPath, { unplugTimeoutMs: 600 });
  });

  afterAll(async () => {
    await vm?.close();
    await qemu?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('times out with TIMEOUT, keeps the nodes, and a retry times out the same way', async () => {
    const volumeId = newId('volume');
    const names = qemuNamesFor(volumeId);
    const file = join(dir, `${volumeId}.raw`);
    writeFileSync(file, '');
    truncateSync(file, MiB);
    await vm.client.execute('blockdev-add', { driver: 'file', 'node-name': names.protocolNode, filename: file });
    await vm.client.execute('blockdev-add', { driver: 'raw', 'node-name': names.node, file: names.protocolNode });
    await vm.client.execute('device_add', { driver: 'virtio-blk-pci', id: names.device, drive: names.node, bus: 'rp1' });
    expect((await vm.listAttached())[0]).toMatchObject({ volumeId, state: 'attached' });

    await expect(vm.detach(volumeId)).rejects.toMatchObject({ code: 'TIMEOUT', details: { deviceId: names.device } });
    await expect(vm.detach(volumeId)).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect((await vm.listAttached())[0]).toMatchObject({ volumeId, nodeName: names.node, deviceId: names.device });
  });

  it('stops waiting when cancelled', async () => {
    const volumeId = (await vm.listAttached())[0]?.volumeId ?? '';
    const ac = new AbortController();
    const p = vm.detach(volumeId, ac.signal);
    setTimeout(() => { ac.abort(); }, 50);
    await expect(p).rejects.toMatchObject({ code: 'TIMEOUT', details: { cancelled: true } });
  });
});
