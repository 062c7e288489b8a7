import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/core/schemas/backend-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { ClaimRepository } from '../../src/store/claim-repository.js';
import { ensureCliBuilt } from '../cli/cli-harness.js';
import { REPO_ROOT, pollUntil } from '../helpers/server.js';
import { startInjectServer, type InjectServer } from '../helpers/inject.js';

interface StorageClass { id: string; name: string; policy: string; isDefault: boolean; zone: string | null; requiredTags: string[]; forbiddenTags: string[]; requiredCapabilities: string[]; volumeCount: number }
interface ErrorBody { code: string; message: string }
interface DryRun { winner: string | null; reason: string; verdicts: { backend: string; passed: boolean; filter: string | null; reason: string | null; score: number | null }[]; summary: Record<string, unknown> }

const MiB = 1024 ** 2;

describe('storage classes, explanations and retry through the real API and CLI', () => {
  let srv: InjectServer;
  /** Runs the built `stowage` CLI against this test's server. */
  const cli = async (...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: srv.dataDir, STOWAGE_URL: srv.server.url, STOWAGE_TOKEN: srv.token };
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'stowage.js'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const code = await new Promise<number | null>((res) => { child.once('close', (c) => { res(c); }); });
    return { code, stdout, stderr };
  };

  beforeAll(async () => {
    await ensureCliBuilt();
    srv = await startInjectServer({ defaultBackend: false });
    const mk = async (name: string, body: Record<string, unknown>): Promise<void> => {
      const dir = join(srv.scratchDir, 'backends', name);
      mkdirSync(dir, { recursive: true });
      await srv.api.ok('POST', '/v1/backends', 201, { body: { name, driver: `dir://${dir}`, ...body } });
    };
    await mk('ssd-cheap', { tags: ['ssd'], cost: 1, zone: 'az1' });
    await mk('ssd-dear', { tags: ['ssd'], cost: 5, zone: 'az1' });
    await mk('hdd', { tags: ['hdd', 'retired'], cost: 0, zone: 'az2' });
    await mk('offload', { tags: ['ssd'], cost: 9, zone: 'az1', capabilityOverrides: { add: ['snapshot.offload'], remove: [] } });
  });
  afterAll(async () => {
    await srv.close();
  });

  it('creates, lists, shows, updates and deletes classes (CLI and API), with one default at most', async () => {
    const created = await cli('class', 'create', 'gold', '--require-tag', 'ssd', '--require-capability', 'snapshot.offload', '--policy', 'spread', '--default', '-o', 'json');
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ name: 'gold', isDefault: true, policy: 'spread', requiredTags: ['ssd'], requiredCapabilities: ['snapshot.offload'] });
    expect((await cli('class', 'create', 'bulk', '--forbid-tag', 'retired', '--policy', 'pack', '--zone', 'az1', '--default')).code).toBe(0);

    const list = await srv.api.ok<{ items: StorageClass[] }>('GET', '/v1/classes', 200);
    expect(list.items.map((c) => [c.name, c.isDefault])).toEqual([['bulk', true], ['gold', false]]);
    const table = await cli('class', 'list');
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+DEFAULT\s+POLICY/i);
    expect(table.stdout).toContain('bulk');

    const shown = await cli('class', 'show', 'bulk');
    expect(shown.stdout).toMatch(/Forbidden tags:?\s+retired/);
    const updated = await cli('class', 'update', 'bulk', '--zone', '', '--policy', 'cheapest', '-o', 'json');
    expect(updated.code, updated.stderr).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject({ zone: null, policy: 'cheapest' });

    const dup = await srv.api.request('POST', '/v1/classes', { body: { name: 'gold' } });
    expect([dup.status, (dup.body as ErrorBody).code]).toEqual([409, 'NAME_TAKEN']);
    const bad = await srv.api.request('POST', '/v1/classes', { body: { name: 'x', requiredTags: ['a'], forbiddenTags: ['a'] } });
    expect([bad.status, (bad.body as ErrorBody).code]).toEqual([400, 'VALIDATION_FAILED']);
    const missing = await cli('class', 'show', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('CLASS_NOT_FOUND');

    const tmp = await srv.api.ok<StorageClass>('POST', '/v1/classes', 201, { body: { name: 'tmp' } });
    expect((await cli('class', 'delete', tmp.name, '--yes')).code).toBe(0);
    expect((await srv.api.request('GET', '/v1/classes/tmp')).status).toBe(404);
  });

  it('places with the named class, or the default class, and explains every verdict in the dry run', async () => {
    // gold: ssd + snapshot.offload → only "offload" qualifies.
    const dry = await srv.api.ok<DryRun>('POST', '/v1/placements/dry-run', 200, { body: { name: 'd1', sizeBytes: 16 * MiB, class: 'gold' } });
    expect(dry.winner).toBe('offload');
    const byName = Object.fromEntries(dry.verdicts.map((v) => [v.backend, v]));
    expect(byName.hdd).toMatchObject({ passed: false, filter: 'tags' });
    expect(byName['ssd-cheap']).toMatchObject({ passed: false, filter: 'capabilities', reason: 'lacks capability snapshot.offload' });
    expect(byName.offload).toMatchObject({ passed: true, filter: null });
    expect(dry.summary).toMatchObject({ className: 'gold', policy: 'spread', winner: 'offload' });

    // The CLI dry run prints the same table and winner.
    const text = await cli('volume', 'create', 'd1', '--size', '16M', '--class', 'gold', '--dry-run');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/Winner: offload/);
    expect(text.stdout).toMatch(/ssd-cheap\s+rejected\s+capabilities/);

    // No class named: the default (bulk: forbids "retired", policy cheapest) applies → ssd-cheap.
    const res = await srv.api.ok<{ volume: Volume }>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'by-default', sizeBytes: 16 * MiB } });
    expect(res.volume).toMatchObject({ state: 'available', backendName: 'ssd-cheap' });
    expect(res.volume.placement).toMatchObject({ className: 'bulk', policy: 'cheapest', rejected: { tags: 1 }, winner: 'ssd-cheap' });

    const shown = await cli('volume', 'show', 'by-default');
    expect(shown.stdout).toContain('class bulk');
    expect(shown.stdout).toMatch(/Rejected: 1 by the tags filter/);

    // A zone the class contradicts is refused; an unknown class is CLASS_NOT_FOUND.
    await srv.api.ok('PATCH', '/v1/classes/gold', 200, { body: { zone: 'az1' } });
    const clash = await srv.api.request('POST', '/v1/volumes', { body: { name: 'clash', sizeBytes: MiB, class: 'gold', zone: 'az2' } });
    expect([clash.status, (clash.body as ErrorBody).code]).toEqual([400, 'VALIDATION_FAILED']);
    const unknown = await srv.api.request('POST', '/v1/volumes', { body: { name: 'unknown', sizeBytes: MiB, class: 'nope' } });
    expect([unknown.status, (unknown.body as ErrorBody).code]).toEqual([404, 'CLASS_NOT_FOUND']);

    // A class in use cannot be deleted.
    const inUse = await srv.api.request('DELETE', '/v1/classes/bulk');
    expect([inUse.status, (inUse.body as ErrorBody).code]).toEqual([409, 'CLASS_IN_USE']);
  });

  it('retries on the next backend when the driver fails, records each attempt, and moves the claim', async () => {
    // A backend whose directory vanished after registration: placement still picks it (cheapest), the driver fails.
    const dir = join(srv.scratchDir, 'backends', 'flaky');
    mkdirSync(dir, { recursive: true });
    await srv.api.ok('POST', '/v1/backends', 201, { body: { name: 'flaky', driver: `dir://${dir}`, tags: ['ssd'], cost: 0, zone: 'az1' } });
    rmSync(dir, { recursive: true, force: true });

    const res = await srv.api.ok<{ volume: Volume }>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'retried', sizeBytes: 16 * MiB, class: 'bulk' } });
    expect(res.volume).toMatchObject({ state: 'available', backendName: 'ssd-cheap' });
    const attempts = res.volume.placement?.attempts ?? [];
    expect(attempts.map((a) => [a.backend, a.ok])).toEqual([['flaky', false], ['ssd-cheap', true]]);
    expect(attempts[0]?.error).toBeTruthy();

    const claims = await new ClaimRepository().listForResource(srv.server.store.db, res.volume.id);
    expect(claims.map((c) => [c.backend_id === res.volume.backendId ? 'winner' : 'flaky', c.state]).sort()).toEqual([['flaky', 'released'], ['winner', 'committed']]);
    const flaky = await srv.api.ok<Backend>('GET', '/v1/backends/flaky', 200);
    expect(flaky.capacity).toMatchObject({ claimedBytes: 0, provisionedBytes: 0 });
    await srv.api.ok('DELETE', '/v1/backends/flaky', 204);
  });

  it('claims the growth of a resize and commits it with the new size', async () => {
    const before = await srv.api.ok<Backend>('GET', '/v1/backends/ssd-cheap', 200);
    const r = await srv.api.ok<{ volume: Volume; operation: { id: string } }>('POST', '/v1/volumes/by-default/resize', 202, { body: { sizeBytes: 32 * MiB } });
    expect(r.volume.state).toBe('resizing');
    const v = await pollUntil('resize to finish', async () => {
      const cur = await srv.api.ok<Volume>('GET', '/v1/volumes/by-default', 200);
      return cur.state === 'available' ? cur : undefined;
    });
    expect(v.sizeBytes).toBe(32 * MiB);
    const after = await srv.api.ok<Backend>('GET', '/v1/backends/ssd-cheap', 200);
    expect(after.capacity.claimedBytes).toBe(0);
    expect(after.capacity.provisionedBytes - before.capacity.provisionedBytes).toBe(16 * MiB);

    // Growing past the backend's usable capacity is refused at submit.
    const huge = await srv.api.request('POST', '/v1/volumes/by-default/resize', { body: { sizeBytes: after.capacity.usableBytes + 64 * MiB } });
    expect([huge.status, (huge.body as ErrorBody).code]).toEqual([422, 'NO_VALID_BACKEND']);
  });
});
