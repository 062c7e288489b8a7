import { join } from 'node:path';
import { ensureBuilt, makeTempDir, removeTempDir } from '../helpers/server.js';
import { startLab, type Lab, type LabHost } from '../lab/lab.js';
import { createVolume, ensureDir, grant, registerBackend, tgtUri, writeAndVerify, type Connection } from '../e2e-iscsi/e2e-kit.js';
import { startDefaultServer, type DefaultServer } from './defaults-kit.js';

/** A server on the shipped defaults with one tgt backend `san`, a volume `vol` granted rw to h1, and data h1 wrote. */
export interface SanWorld {
  readonly lab: Lab;
  readonly dir: string;
  readonly s: DefaultServer;
  readonly h1: LabHost;
  readonly c: Connection;
}

/** Builds the world of the tgtd scenarios: a lab with tgtd and one host, `sizeBytes` of volume, `pattern` written at 0. */
export async function startSanWorld(prefix: string, sizeBytes: number, pattern: number): Promise<SanWorld> {
  await ensureBuilt();
  const built: { -readonly [K in keyof SanWorld]?: SanWorld[K] } = {};
  try {
    const lab = built.lab = await startLab({ hosts: 1, tgtd: true, btrfs: false, xfs: false });
    const h1 = built.h1 = lab.host('h1');
    const dir = built.dir = makeTempDir(prefix);
    const s = built.s = await startDefaultServer({ dataDir: join(dir, 'server') });
    await s.api.ok('POST', '/v1/hosts', 201, { body: { name: h1.name, initiatorName: h1.initiatorName, addresses: [h1.address] } });
    await registerBackend(s.api, 'san', tgtUri(lab, `dir://${ensureDir(join(dir, 'luns'))}`));
    await createVolume(s.api, 'vol', sizeBytes, 'san');
    const c = await grant(s.api, 'vol', 'h1', 'rw');
    await writeAndVerify(lab, h1, c, pattern, 0, 64 * 1024);
    return { lab, dir, s, h1, c };
  } catch (err) {
    // A half-built world is torn down here: the caller never gets it.
    await stopSanWorld(built).catch(() => undefined);
    throw err;
  }
}

/** Tears a SanWorld down (server by PID, then the lab and the temp dir); safe on a half-built one. */
export async function stopSanWorld(w: Partial<SanWorld>): Promise<void> {
  try {
    await w.s?.kill9();
  } finally {
    await w.lab?.stop();
    if (w.dir) removeTempDir(w.dir);
  }
}
