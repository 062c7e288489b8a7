import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { TEST_UMASKS, notPrivate, withUmask } from '../helpers/file-modes.js';
import { clientFor, ensureBuilt, killAllSpawned, makeTempDir, removeTempDir, spawnServer } from '../helpers/server.js';

const MiB = 1024 * 1024;
const dirs: string[] = [];
afterEach(async () => { await killAllSpawned(); });
afterAll(() => { for (const d of dirs) removeTempDir(d); });

interface VolumeAnswer { readonly volume: Volume; readonly operation: Operation }

describe('the server keeps its state private whatever the umask', () => {
  for (const mask of TEST_UMASKS) {
    it(`makes the data dir, volumes/, the store (+ -wal, -shm) and every image private under umask ${mask.toString(8).padStart(3, '0')}`, async () => {
      await ensureBuilt();
      const root = makeTempDir('stowage-modes-');
      dirs.push(root);
      const dataDir = join(root, 'data');
      // The spawned server runs in its data dir, so it exists: made world-readable, as an earlier
      // version or a person may have left it, it must be tightened (volumes/ and the store are new).
      mkdirSync(dataDir);
      chmodSync(dataDir, 0o777 & ~mask);
      const server = await withUmask(mask, () => spawnServer({ dataDir }));
      const api = clientFor(server);
      const create = async (body: Record<string, unknown>): Promise<Volume> =>
        (await api.ok<VolumeAnswer>('POST', '/v1/volumes?wait=true', 200, { body })).volume;
      await create({ name: 'q', sizeBytes: 4 * MiB, format: 'qcow2' });
      const raw = await create({ name: 'r', sizeBytes: 4 * MiB });
      for (const [name, volume] of [['sq', 'q'], ['sr', 'r']] as const) {
        await api.ok('POST', '/v1/snapshots?wait=true', 200, { body: { volume, name } });
      }
      await create({ name: 'clone-q', fromSnapshot: 'sq' });
      await create({ name: 'clone-r', fromSnapshot: 'sr' });
      await create({ name: 'clone-v', fromVolume: 'r' });
      await api.ok('POST', `/v1/volumes/${raw.id}/revert?wait=true`, 200, { body: { snapshot: 'sr' } });
      for (const f of ['stowage.db', 'stowage.db-wal', 'stowage.db-shm', 'secret.key', 'volumes']) expect(existsSync(join(dataDir, f)), f).toBe(true);
      expect(await notPrivate(dataDir)).toEqual([]);
    });
  }
});
