import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeEnrollment, NodeInfo } from '../../src/core/schemas/node-schema.js';
import type { Backend } from '../../src/core/schemas/backend-schema.js';
import { CliSession } from './cli-harness.js';

/** `stowage node create|list|show|drain|delete` and `backend create --node`, run as the built CLI against a real server. */
describe('stowage node commands', () => {
  let s: CliSession;
  beforeAll(async () => { s = await CliSession.start(); }, 120_000);
  afterAll(async () => { await s.stop(); });

  it('node create prints the token once with the exact node run line, the token kept out of argv there', async () => {
    const r = await s.run(['node', 'create', 'sn1', '--address', '10.0.0.5']);
    expect(r.code, r.stderr).toBe(0);
    const token = /^\s+(stw1\.node\.\S+)$/m.exec(r.stdout)?.[1];
    expect(token).toBeDefined();
    expect(r.stdout).toContain('node sn1 registered at 10.0.0.5:8751: enrolling');
    expect(r.stdout).toContain(`stowage node run --name sn1 --listen 10.0.0.5:8751 --api ${s.server.url} --enroll-file /root/sn1.token`);
    expect(r.stdout.split(token ?? '-').length - 1, 'the token is printed exactly once').toBe(1);
  });

  it('node create -o json answers the node and its token', async () => {
    const e = await s.json<NodeEnrollment>(['node', 'create', 'sn2', '--address', '10.0.0.6:9000', '--enroll-ttl', '30m']);
    expect(e.node).toMatchObject({ name: 'sn2', address: '10.0.0.6:9000', state: 'enrolling' });
    expect(e.enrollToken).toMatch(/^stw1\.node\./);
    expect(Date.parse(e.enrollExpiresAt) - Date.now()).toBeLessThanOrEqual(30 * 60_000);
  });

  it('node list shows a table and JSON; node show every field', async () => {
    const r = await s.run(['node', 'list']);
    expect(r.code, r.stderr).toBe(0);
    const [head, ...rows] = r.stdout.trimEnd().split('\n');
    expect(head?.split(/\s{2,}/)).toEqual(['NAME', 'STATE', 'ADDRESS', 'VERSION', 'HEARTBEAT', 'SKEW', 'BACKENDS', 'IN-FLIGHT', 'KEY', 'KEY EXPIRES']);
    expect(rows.map((l) => l.split(/\s+/)[0])).toEqual(['sn1', 'sn2']);
    expect(rows[0]).toMatch(/^sn1\s+enrolling\s+10\.0\.0\.5:8751\s+-/);
    const items = await s.json<NodeInfo[]>(['node', 'list']);
    expect(items.map((n) => n.name)).toEqual(['sn1', 'sn2']);
    const show = await s.run(['node', 'show', 'sn1']);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/Name:?\s+sn1/);
    expect(show.stdout).toMatch(/Key:?\s+none pinned/);
    expect(JSON.stringify(await s.json<NodeInfo>(['node', 'show', 'sn1']))).not.toMatch(/stw1\./);
  });

  it('backend create --node puts the backend on it (node shown); node delete is then refused naming it', async () => {
    const b = await s.json<Backend>(['backend', 'create', 'ssd1', '--node', 'sn1', '--driver', 'dir:///srv/on-sn1', '--no-wait']);
    expect((b as Backend & { backend?: Backend }).backend?.node ?? b.node).toBe('sn1');
    const list = await s.run(['backend', 'list']);
    expect(list.stdout).toMatch(/ssd1\s+\S+\s+primary\s+sn1\s/);
    const del = await s.run(['node', 'delete', 'sn1']);
    expect(del.code).not.toBe(0);
    expect(del.stderr).toContain('NODE_IN_USE');
    expect(del.stderr).toContain('ssd1');
    const unknown = await s.run(['backend', 'create', 'ssd2', '--node', 'absent', '--driver', 'dir:///srv/x']);
    expect(unknown.stderr).toContain('NODE_NOT_FOUND');
  });

  it('node drain and delete', async () => {
    const d = await s.json<NodeInfo>(['node', 'drain', 'sn2']);
    expect(d).toMatchObject({ state: 'draining', adminState: 'draining' });
    const r = await s.run(['node', 'delete', 'sn2']);
    expect(r.code, r.stderr).toBe(0);
    expect((await s.json<NodeInfo[]>(['node', 'list'])).map((n) => n.name)).toEqual(['sn1']);
  });
});
