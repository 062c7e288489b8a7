import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../src/core/token-hash.js';
import {
  ApiClient, cliConfigPathOf, clientFor, ensureBuilt, killAllSpawned, makeTempDir, readToken, removeTempDir, spawnServer,
} from '../helpers/server.js';

/**
 * The real built server (`node dist/main.js serve --config FILE`) on its first and second start:
 * the config file is really read (and STOWAGE_* variables override it), the admin token is printed
 * once and written to a 0600 CLI config, and only its hash is stored.
 */
describe('stowage serve: config file, first start and the admin token', () => {
  let dir: string;
  let configFile: string;

  beforeAll(async () => {
    await ensureBuilt();
    dir = makeTempDir('stowage-serve-');
    configFile = join(dir, 'config.json');
    // Settings the spawn helper does not set through the environment, so only the file can make them
    // true; `port` is one the environment (STOWAGE_PORT) overrides.
    writeFileSync(configFile, JSON.stringify({ defaultBackend: false, bodyLimitBytes: 2048, port: 1 }), { mode: 0o600 });
  });
  afterAll(async () => {
    await killAllSpawned();
    removeTempDir(dir);
  });

  it('first start: prints the token once, writes it to a 0600 CLI config, stores only its hash, and uses the config file', async () => {
    const dataDir = join(dir, 'data');
    mkdirSync(dataDir, { mode: 0o700 });
    const first = await spawnServer({ dataDir, args: ['--config', configFile] });
    let token: string;
    try {
      token = readToken(cliConfigPathOf(dataDir));
      expect(statSync(cliConfigPathOf(dataDir)).mode & 0o777).toBe(0o600);
      expect(first.output()).toContain('Admin API token');
      expect(first.output().split(token).length - 1).toBe(1);
      const api = clientFor(first);
      // From the file: no default backend and a 2 KiB body limit. From the environment: the port (not 1).
      expect(new URL(first.url).port).not.toBe('1');
      expect((await api.ok<{ items: unknown[] }>('GET', '/v1/backends', 200)).items).toEqual([]);
      const big = await api.request('POST', '/v1/hosts', { body: { name: 'h1', addresses: ['10.99.0.9'], pad: 'x'.repeat(4096) } });
      expect(big.status).toBe(413);
    } finally {
      expect((await first.stop()).code).toBe(0);
    }

    // At rest, only the hash: the token is in neither the row nor the database file.
    const raw = new SqliteDatabase(join(dataDir, 'stowage.db'), { readonly: true });
    try {
      const rows = raw.prepare('select token_hash from api_tokens').all() as { token_hash: string }[];
      expect(rows).toEqual([{ token_hash: hashToken(token) }]);
    } finally {
      raw.close();
    }
    for (const f of ['stowage.db', 'stowage.db-wal']) {
      let bytes: Buffer;
      try { bytes = readFileSync(join(dataDir, f)); } catch { continue; }
      expect(bytes.includes(Buffer.from(token)), `${f} holds the token in clear`).toBe(false);
    }

    // Second start on the same data: no new token, none printed, the old one still works.
    const second = await spawnServer({ dataDir, args: ['--config', configFile] });
    try {
      expect(second.output()).not.toContain('Admin API token');
      expect(second.output()).not.toContain(token);
      expect(readToken(cliConfigPathOf(dataDir))).toBe(token);
      const api = new ApiClient(second.url, token);
      expect((await api.request('GET', '/v1/backends')).status).toBe(200);
    } finally {
      expect((await second.stop()).code).toBe(0);
    }
  });
});
