import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StowageError, type ErrorCode } from '../../src/core/errors.js';
import { newId } from '../../src/core/ids.js';
import { BACKEND_KINDS, type VolumeFormat } from '../../src/core/states.js';
import { assertDeclaredPorts, checkReport } from '../../src/drivers/sdk/driver-contract.js';
import { portOf, type PortName } from '../../src/drivers/sdk/ports.js';
import { CAPABILITIES, type BackendReport, type BlockDriver, type DriverHandle } from '../../src/drivers/sdk/types.js';
import { CommandFailedError, type CommandRunner } from '../../src/system/command-runner.js';

/** Reads and writes volume data so the kit can check snapshot/clone/revert semantics, not just shapes. */
export interface VolumeDataAccess {
  /** Writes `lengthBytes` copies of `byte` at `offsetBytes`. */
  fill(handle: DriverHandle, offsetBytes: number, lengthBytes: number, byte: number, signal: AbortSignal): Promise<void>;
  /** True when every byte of the range equals `byte`. */
  isFilled(handle: DriverHandle, offsetBytes: number, lengthBytes: number, byte: number, signal: AbortSignal): Promise<boolean>;
}

/** What a driver under test comes with. */
export interface ConformanceSubject {
  readonly driver: BlockDriver;
  /** Removes everything the subject created (directories, loop devices, daemons). */
  cleanup(): Promise<void>;
  /** Reads and writes volume data: snapshot, clone and revert are checked by their bytes, not only their shapes. */
  readonly data: VolumeDataAccess;
}

/** The data-management capabilities the kit checks by behaviour. */
export type CheckedCapability = 'snapshot' | 'clone' | 'revert';

/** Every capability the kit checks by behaviour. */
const CHECKED_CAPABILITIES: readonly CheckedCapability[] = ['snapshot', 'clone', 'revert'];

/** Knobs for one conformance run. */
export interface ConformanceOptions {
  /** Volume size used by the tests (default 4 MiB). */
  readonly sizeBytes?: number;
  /** Format passed in CreateVolume (default: none, the driver's default). */
  readonly format?: VolumeFormat;
  /**
   * Which of snapshot, clone and revert this subject must claim. Stated by the test, not read from
   * the driver: a driver that stops claiming one fails instead of skipping its checks, and each one
   * claimed is then checked by behaviour.
   */
  readonly claims: readonly CheckedCapability[];
}

const signal = (): AbortSignal => new AbortController().signal;

/** Resolves to the error `promise` rejects with, failing the test if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** Asserts `promise` rejects with a StowageError carrying `code`. */
async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const err = await rejection(promise);
  expect(err).toBeInstanceOf(StowageError);
  expect((err as StowageError).code).toBe(code);
}

/**
 * Data access through `qemu-io` on the driver's data port: works for any driver whose data path
 * qemu can open (files, iscsi://, nbd://). Pattern checks use `read -P`, which exits non-zero on a
 * mismatch.
 */
export function qemuIoDataAccess(driver: BlockDriver, runner: CommandRunner): VolumeDataAccess {
  const target = (handle: DriverHandle): { path: string; format: VolumeFormat } => {
    const data = portOf(driver, 'data');
    if (!data) throw new Error(`driver ${driver.scheme} has no data port`);
    return data.locate(handle);
  };
  const hex = (byte: number): string => `0x${byte.toString(16).padStart(2, '0')}`;
  return {
    async fill(handle, offsetBytes, lengthBytes, byte, sig) {
      const { path, format } = target(handle);
      await runner.run('qemu-io', ['-f', format, '-c', `write -P ${hex(byte)} ${offsetBytes} ${lengthBytes}`, path], { timeoutMs: 60_000, signal: sig });
    },
    async isFilled(handle, offsetBytes, lengthBytes, byte, sig) {
      const { path, format } = target(handle);
      try {
        await runner.run('qemu-io', ['-r', '-f', format, '-c', `read -P ${hex(byte)} ${offsetBytes} ${lengthBytes}`, path], { timeoutMs: 60_000, signal: sig });
        return true;
      } catch (err) {
        if (err instanceof CommandFailedError && /Pattern verification failed/.test(`${err.stdout}\n${err.stderrTail}`)) return false;
        throw err;
      }
    },
  };
}

/** Asserts the report's numbers and capability names are well formed. */
export function assertReportShape(report: BackendReport): void {
  for (const key of ['totalBytes', 'freeBytes', 'usedBytes'] as const) {
    expect(Number.isSafeInteger(report[key]), `${key} is a safe integer`).toBe(true);
    expect(report[key], `${key} is not negative`).toBeGreaterThanOrEqual(0);
  }
  expect(report.freeBytes).toBeLessThanOrEqual(report.totalBytes);
  expect(report.usedBytes).toBeLessThanOrEqual(report.totalBytes);
  for (const cap of report.capabilities) expect(CAPABILITIES).toContain(cap);
  expect(new Set(report.capabilities).size).toBe(report.capabilities.length);
}

/**
 * Registers vitest tests that check the BlockDriver contract against any driver: probe shape,
 * idempotent create/delete, grow-only resize, conflicting re-create, cancellation, and snapshots,
 * clones and revert with data checks for each capability `options.claims` says the driver has (and
 * a refusal for each it has not).
 */
export function describeBlockDriverConformance(
  name: string,
  makeDriver: () => Promise<ConformanceSubject>,
  options: ConformanceOptions,
): void {
  const sizeBytes = options.sizeBytes ?? 4 * 1024 * 1024;
  const req = (id: string, size = sizeBytes): { id: string; name: string; sizeBytes: number; format?: VolumeFormat } => ({
    id, name: `conformance-${id}`, sizeBytes: size, ...(options.format ? { format: options.format } : {}),
  });

  describe(`BlockDriver conformance: ${name}`, () => {
    let subject: ConformanceSubject | undefined;
    let report: BackendReport | undefined;
    const drv = (): BlockDriver => {
      if (!subject) throw new Error('driver not set up');
      return subject.driver;
    };
    const listed = async (id: string): Promise<number[]> => (await drv().listVolumes(signal())).filter((v) => v.id === id).map((v) => v.sizeBytes);

    beforeAll(async () => {
      subject = await makeDriver();
      report = await subject.driver.probe(signal());
    });
    afterAll(async () => {
      await subject?.driver.close?.();
      await subject?.cleanup();
    });

    it('names its scheme and kind', () => {
      expect(drv().scheme).toMatch(/^[a-z][a-z0-9+.-]*$/);
      expect(BACKEND_KINDS).toContain(drv().kind);
    });

    it('probe reports capacity and known capabilities', async () => {
      const again = await drv().probe(signal());
      assertReportShape(again);
      expect(again.totalBytes).toBeGreaterThan(0);
    });

    it('has the port of every capability it declares, and declares every capability it reports', () => {
      expect(() => { assertDeclaredPorts(drv()); }).not.toThrow();
      if (!report) throw new Error('no probe report');
      expect(() => checkReport(drv(), report as BackendReport)).not.toThrow();
      for (const cap of report.capabilities) expect([...drv().capabilities]).toContain(cap);
    });

    it('create, list, idempotent create, grow, no-op resize, refused shrink, delete, idempotent delete', async () => {
      const id = newId('volume');
      const handle = await drv().createVolume(req(id), signal());
      expect(typeof handle).toBe('object');
      expect(JSON.parse(JSON.stringify(handle))).toEqual(handle); // handles are stored as JSON
      expect(await listed(id)).toEqual([sizeBytes]);

      const again = await drv().createVolume(req(id), signal());
      expect(again).toEqual(handle);
      expect(await listed(id)).toEqual([sizeBytes]);

      await drv().resizeVolume(handle, sizeBytes * 2, signal());
      expect(await listed(id)).toEqual([sizeBytes * 2]);
      await drv().resizeVolume(handle, sizeBytes * 2, signal());
      expect(await listed(id)).toEqual([sizeBytes * 2]);
      await expectCode(drv().resizeVolume(handle, sizeBytes, signal()), 'SHRINK_NOT_SUPPORTED');
      expect(await listed(id)).toEqual([sizeBytes * 2]);

      await drv().deleteVolume(handle, signal());
      expect(await listed(id)).toEqual([]);
      await drv().deleteVolume(handle, signal());
      expect(await listed(id)).toEqual([]);
    });

    it('refuses to re-create an id with a different size and leaves the volume alone', async () => {
      const id = newId('volume');
      const handle = await drv().createVolume(req(id), signal());
      await expectCode(drv().createVolume(req(id, sizeBytes * 2), signal()), 'INVALID_STATE');
      expect(await listed(id)).toEqual([sizeBytes]);
      await drv().deleteVolume(handle, signal());
    });

    it('concurrent creates of one id yield one volume', async () => {
      const id = newId('volume');
      const handles = await Promise.all([1, 2, 3].map(() => drv().createVolume(req(id), signal())));
      expect(handles[1]).toEqual(handles[0]);
      expect(handles[2]).toEqual(handles[0]);
      expect(await listed(id)).toEqual([sizeBytes]);
      await drv().deleteVolume(handles[0] ?? {}, signal());
    });

    it('rejects sizes that are not positive whole bytes', async () => {
      await expectCode(drv().createVolume(req(newId('volume'), 0), signal()), 'INVALID_SIZE');
      await expectCode(drv().createVolume(req(newId('volume'), -4096), signal()), 'INVALID_SIZE');
      await expectCode(drv().createVolume(req(newId('volume'), 1.5), signal()), 'INVALID_SIZE');
    });

    it('does nothing when the signal is already aborted', async () => {
      const id = newId('volume');
      const ac = new AbortController();
      ac.abort();
      await rejection(drv().createVolume(req(id), ac.signal));
      expect(await listed(id)).toEqual([]);
    });

    describeSnapshots(() => ({ driver: drv(), report, data: subject?.data }), req, sizeBytes, options.claims);
  });
}

type Env = () => { driver: BlockDriver; report: BackendReport | undefined; data: VolumeDataAccess | undefined };
type ReqFn = (id: string, size?: number) => { id: string; name: string; sizeBytes: number; format?: VolumeFormat };

/** The port the driver must have because the test claims the capability. */
function required<N extends PortName>(driver: BlockDriver, name: N, cap: CheckedCapability): NonNullable<BlockDriver[N]> {
  const port = portOf(driver, name);
  if (port === undefined) throw new Error(`the driver claims ${cap} but has no ${name} port`);
  return port;
}

/**
 * Snapshot, clone and revert checks. Which run is fixed by `claims` (what the test says the driver
 * has), never by what the driver reports, so a lost capability fails rather than skips.
 */
function describeSnapshots(env: Env, req: ReqFn, sizeBytes: number, claims: readonly CheckedCapability[]): void {
  const CHUNK = 64 * 1024;
  const claimed = (cap: CheckedCapability): boolean => claims.includes(cap);
  const dataOf = (): VolumeDataAccess => {
    const data = env().data;
    if (!data) throw new Error('the conformance subject has no data access');
    return data;
  };
  const fill = async (h: DriverHandle, byte: number): Promise<void> => { await dataOf().fill(h, 0, CHUNK, byte, signal()); };
  const expectFilled = async (h: DriverHandle, byte: number): Promise<void> => {
    expect(await dataOf().isFilled(h, 0, CHUNK, byte, signal()), `first ${CHUNK} bytes are 0x${byte.toString(16)}`).toBe(true);
  };
  const listedSize = async (id: string): Promise<number[]> => (await env().driver.listVolumes(signal())).filter((v) => v.id === id).map((v) => v.sizeBytes);

  it(`reports exactly the claimed data capabilities (${claims.length > 0 ? claims.join(', ') : 'none'})`, () => {
    const reported = CHECKED_CAPABILITIES.filter((c) => env().report?.capabilities.includes(c) ?? false);
    expect(reported).toEqual(CHECKED_CAPABILITIES.filter(claimed));
  });

  it('the data access can tell bytes apart (or every data check below would pass vacuously)', async () => {
    const { driver } = env();
    const h = await driver.createVolume(req(newId('volume')), signal());
    await fill(h, 0xa1);
    await expectFilled(h, 0xa1);
    expect(await dataOf().isFilled(h, 0, CHUNK, 0x5c, signal())).toBe(false);
    await driver.deleteVolume(h, signal());
  });

  if (!claimed('snapshot')) {
    it('without the snapshot capability, snapshot is absent or fails with CAPABILITY_MISSING', async () => {
      const { driver } = env();
      const snapshots = portOf(driver, 'snapshots');
      if (!snapshots) return;
      const h = await driver.createVolume(req(newId('volume')), signal());
      await expectCode(snapshots.create(h, newId('snapshot'), signal()), 'CAPABILITY_MISSING');
      await driver.deleteVolume(h, signal());
    });
  }
  if (!claimed('clone')) {
    it('without the clone capability, clone is absent or fails with CAPABILITY_MISSING', async () => {
      const { driver } = env();
      const clones = portOf(driver, 'clones');
      if (!clones) return;
      const h = await driver.createVolume(req(newId('volume')), signal());
      await expectCode(clones.clone(h, req(newId('volume')), signal()), 'CAPABILITY_MISSING');
      await driver.deleteVolume(h, signal());
    });
  }

  it.runIf(claimed('snapshot'))('snapshot is point-in-time; clone from it, revert to it, delete it (idempotently)', async () => {
    const { driver } = env();
    const snapshots = required(driver, 'snapshots', 'snapshot');
    const volId = newId('volume');
    const vol = await driver.createVolume(req(volId), signal());
    await fill(vol, 0xa1);
    const snapId = newId('snapshot');
    const snap = await snapshots.create(vol, snapId, signal());
    expect(await snapshots.create(vol, snapId, signal())).toEqual(snap);
    expect(await listedSize(volId)).toEqual([sizeBytes]); // the snapshot is not listed as a volume
    await fill(vol, 0xb2);
    await expectFilled(vol, 0xb2);

    if (claimed('clone')) {
      const clones = required(driver, 'clones', 'clone');
      const cloneId = newId('volume');
      const clone = await clones.clone(snap, req(cloneId), signal());
      await expectFilled(clone, 0xa1);
      expect(await listedSize(cloneId)).toEqual([sizeBytes]);
      expect(await clones.clone(snap, req(cloneId), signal())).toBeDefined();
      await fill(clone, 0xc3);
      await expectFilled(vol, 0xb2);
      await driver.deleteVolume(clone, signal());
    }
    if (claimed('revert')) {
      await required(driver, 'revert', 'revert').revert(vol, snap, signal());
      await expectFilled(vol, 0xa1);
      expect(await listedSize(volId)).toEqual([sizeBytes]);
    }
    await snapshots.delete(snap, signal());
    await snapshots.delete(snap, signal());
    await expectFilled(vol, claimed('revert') ? 0xa1 : 0xb2);
    expect(await listedSize(volId)).toEqual([sizeBytes]);
    await driver.deleteVolume(vol, signal());
  });

  it.runIf(claimed('snapshot') && claimed('clone'))('deleting an older snapshot keeps newer snapshots, clones and the volume intact', async () => {
    const { driver } = env();
    const snapshots = required(driver, 'snapshots', 'snapshot');
    const clones = required(driver, 'clones', 'clone');
    const vol = await driver.createVolume(req(newId('volume')), signal());
    await fill(vol, 0x11);
    const s1 = await snapshots.create(vol, newId('snapshot'), signal());
    const c1 = await clones.clone(s1, req(newId('volume')), signal());
    await fill(vol, 0x22);
    const s2 = await snapshots.create(vol, newId('snapshot'), signal());
    await fill(vol, 0x33);
    await snapshots.delete(s1, signal());
    await expectFilled(c1, 0x11);
    await expectFilled(vol, 0x33);
    const c2 = await clones.clone(s2, req(newId('volume')), signal());
    await expectFilled(c2, 0x22);
    await snapshots.delete(s2, signal());
    await expectFilled(c2, 0x22);
    await expectFilled(vol, 0x33);
    for (const h of [c1, c2, vol]) await driver.deleteVolume(h, signal());
  });

  it.runIf(claimed('clone'))('clone of a volume is independent of it and may be larger', async () => {
    const { driver } = env();
    const clones = required(driver, 'clones', 'clone');
    const vol = await driver.createVolume(req(newId('volume')), signal());
    await fill(vol, 0x44);
    const cloneId = newId('volume');
    const clone = await clones.clone(vol, req(cloneId, sizeBytes * 2), signal());
    expect(await listedSize(cloneId)).toEqual([sizeBytes * 2]);
    await fill(vol, 0x55);
    await expectFilled(clone, 0x44);
    await expectCode(clones.clone(vol, req(newId('volume'), sizeBytes / 2), signal()), 'SHRINK_NOT_SUPPORTED');
    await driver.deleteVolume(clone, signal());
    await driver.deleteVolume(vol, signal());
  });
}
