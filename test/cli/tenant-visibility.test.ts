import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/core/schemas/backend-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { CliSession } from './cli-harness.js';

/** `--all-tenants`, `--tenant`/`--shared` and `--token-file`, run as the built CLI against a real server. */
describe('stowage tenant visibility flags', () => {
  let s: CliSession;
  const ok = async (args: string[]): Promise<string> => {
    const r = await s.run(args);
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  beforeAll(async () => {
    s = await CliSession.start();
    for (const [tenant, user] of [['acme', 'alice'], ['globex', 'gil']] as const) {
      await ok(['tenant', 'create', tenant]);
      await ok(['user', 'create', user, '--tenant', tenant, '--role', 'member']);
      await ok(['token', 'create', 'cli', '--user', user, '--out', `${user}.token`]);
    }
  }, 120_000);
  afterAll(async () => { await s.stop(); });

  it('--token-file acts as that user; a missing or empty file is refused before anything is sent', async () => {
    expect(await ok(['--token-file', 'alice.token', 'whoami'])).toContain('alice');
    const missing = await s.run(['--token-file', 'nope.token', 'volume', 'list']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('cannot read the token file nope.token');
    writeFileSync(join(s.dir, 'empty.token'), '\n', { mode: 0o600 });
    const empty = await s.run(['--token-file', 'empty.token', 'volume', 'list']);
    expect([empty.code === 0, empty.stderr.includes('is empty')]).toEqual([false, true]);
  });

  it('volume list --all-tenants prints one table per tenant for an admin, and is refused to a member', async () => {
    await ok(['--token-file', 'alice.token', 'volume', 'create', 'web', '--size', '1M']);
    await ok(['--token-file', 'gil.token', 'volume', 'create', 'web', '--size', '2M']);
    const text = await ok(['volume', 'list', '--all-tenants']);
    expect(text).toMatch(/Tenant acme:\nNAME\s+ID.*\nweb\s+vol-/);
    expect(text).toMatch(/Tenant globex:\nNAME\s+ID.*\nweb\s+vol-/);
    expect(text.indexOf('Tenant acme:')).toBeLessThan(text.indexOf('Tenant globex:'));
    const json = await s.json<Volume[]>(['volume', 'list', '--all-tenants']);
    expect(json.filter((v) => v.name === 'web')).toHaveLength(2);
    expect(await ok(['volume', 'list'])).not.toContain('web'); // the admin's own tenant has none
    const refused = await s.run(['--token-file', 'gil.token', 'volume', 'list', '--all-tenants']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('only admins');
    expect(await ok(['--token-file', 'gil.token', 'operation', 'list'])).not.toContain('alice');
  });

  it('backend, class and host take --tenant and --shared, show whom they are for, and refuse both at once', async () => {
    mkdirSync(join(s.dir, 'srv', 'gold'), { recursive: true });
    await ok(['backend', 'create', 'gold', '--driver', `dir://${join(s.dir, 'srv', 'gold')}`, '--tenant', 'acme', '--cost', '0']);
    expect(await ok(['backend', 'show', 'gold'])).toMatch(/Tenants:?\s+only acme/);
    const b = await s.json<Backend>(['backend', 'show', 'gold']);
    expect(b.tenants).toEqual(['acme']);
    await ok(['--token-file', 'alice.token', 'volume', 'create', 'on-gold', '--size', '1M']);
    const placed = await s.json<Volume>(['--token-file', 'alice.token', 'volume', 'show', 'on-gold']);
    expect(placed.backendName).toBe('gold');
    const dry = await ok(['--token-file', 'gil.token', 'volume', 'create', 'x', '--size', '1M', '--dry-run']);
    expect(dry).not.toContain('gold');
    await ok(['backend', 'update', 'gold', '--shared']);
    expect(await ok(['backend', 'show', 'gold'])).toMatch(/Tenants:?\s+every tenant \(shared\)/);
    const both = await s.run(['backend', 'update', 'gold', '--shared', '--tenant', 'acme']);
    expect([both.code === 0, both.stderr.includes('not both')]).toEqual([false, true]);
    const unknown = await s.run(['class', 'create', 'fast', '--tenant', 'nope']);
    expect([unknown.code === 0, unknown.stderr.includes('TENANT_NOT_FOUND') || unknown.stderr.includes('tenant "nope" does not exist')]).toEqual([false, true]);
    expect((await s.run(['class', 'show', 'fast'])).code).not.toBe(0); // nothing was created
    await ok(['class', 'create', 'fast', '--tenant', 'globex']);
    expect(await ok(['class', 'show', 'fast'])).toMatch(/Tenants:?\s+only globex/);
    expect(await ok(['--token-file', 'alice.token', 'class', 'list'])).not.toContain('fast');
    await ok(['host', 'create', 'hv1', '--tenant', 'globex']);
    expect(await ok(['host', 'show', 'hv1'])).toMatch(/Tenants:?\s+only globex/);
    const grant = await s.run(['--token-file', 'alice.token', 'volume', 'grant', 'web', '--host', 'hv1']);
    expect([grant.code === 0, grant.stderr.includes('host "hv1" does not exist')]).toEqual([false, true]);
  });
});
