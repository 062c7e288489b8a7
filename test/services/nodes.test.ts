import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { formatEnrollmentToken, parseEnrollmentToken } from '../../src/core/enrollment-token.js';
import { hashToken } from '../../src/core/token-hash.js';
import { SpawnCommandRunner } from '../../src/system/command-runner.js';
import { fingerprintOf, generateIdentity, type TlsIdentity } from '../../src/system/tls-identity.js';
import { ALL, expectCode, expectRefusedChangingNothing, openServiceWorld, type ServiceWorld } from './services-kit.js';

/** NodeService's rules on a real store: registration with a one-time token, enrollment pinning a real certificate, drain, rekey, revoke, delete. */
describe('NodeService (service tier)', () => {
  let w: ServiceWorld;
  let key1: TlsIdentity;
  let key2: TlsIdentity;
  beforeAll(async () => {
    const runner = new SpawnCommandRunner();
    [key1, key2] = await Promise.all([generateIdentity(runner, 'node-a', ['127.0.0.1']), generateIdentity(runner, 'node-b')]);
  });
  beforeEach(async () => { w = await openServiceWorld(); });
  afterEach(async () => { await w.close(); });

  it('registers a node as enrolling with a one-time token it keeps only hashed, and journals it', async () => {
    const e = await w.cp.nodes.create({ name: 'sn1', address: '10.0.0.5' }, 'test');
    expect(e.node).toMatchObject({ name: 'sn1', address: '10.0.0.5:8751', state: 'enrolling', adminState: 'active', keyFingerprint: null, backends: [] });
    expect(e.node.enrollmentExpiresAt).toBe(e.enrollExpiresAt);
    const ttl = Date.parse(e.enrollExpiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(59 * 60_000);
    expect(ttl).toBeLessThanOrEqual(60 * 60_000);
    const parsed = parseEnrollmentToken(e.enrollToken);
    // Loopback without tls: the token says the API is plain HTTP.
    expect(parsed).toMatchObject({ kind: 'node', apiFingerprint: null });
    const row = await w.store.db.selectFrom('nodes').selectAll().where('name', '=', 'sn1').executeTakeFirstOrThrow();
    expect(row.enroll_token_hash).toBe(hashToken(parsed.secret));
    expect(JSON.stringify(await w.world())).not.toContain(parsed.secret);
    const ops = await w.store.db.selectFrom('operations').select(['kind', 'state', 'target_id']).execute();
    expect(ops).toEqual([{ kind: 'node.create', state: 'succeeded', target_id: e.node.id }]);
    expect((await w.cp.nodes.list(ALL)).items.map((n) => n.name)).toEqual(['sn1']);
  });

  it('with tls on, the token carries the API certificate\'s pin', async () => {
    const t = await openServiceWorld({ tls: 'on' });
    try {
      const e = await t.cp.nodes.create({ name: 'sn1', address: '10.0.0.5:9000' }, 'test');
      const api = await t.cp.identities.get('api');
      expect(parseEnrollmentToken(e.enrollToken).apiFingerprint).toBe(api.fingerprint);
      expect(e.node.address).toBe('10.0.0.5:9000');
    } finally {
      await t.close();
    }
  });

  it('enrolls once: pins the certificate, answers the control plane\'s node-client certificate, state syncing; the token then fails', async () => {
    const e = await w.cp.nodes.create({ name: 'sn1', address: '127.0.0.1:8751' }, 'test');
    const answer = await w.cp.nodes.enroll('sn1', e.enrollToken, key1.certPem);
    expect(answer.node).toBe('sn1');
    expect(fingerprintOf(answer.controlPlaneCertPem)).toBe((await w.cp.identities.get('node-client')).fingerprint);
    const n = await w.cp.nodes.get('sn1');
    expect(n).toMatchObject({ state: 'syncing', keyFingerprint: key1.fingerprint, keyExpiresAt: key1.expiresAt, enrollmentExpiresAt: null });
    // Replayed, or used by another key: refused the same way, the pin unchanged.
    await expectRefusedChangingNothing(w, [
      ['ENROLLMENT_INVALID', () => w.cp.nodes.enroll('sn1', e.enrollToken, key1.certPem)],
      ['ENROLLMENT_INVALID', () => w.cp.nodes.enroll('sn1', e.enrollToken, key2.certPem)],
    ]);
  });

  it('of two concurrent uses of one token exactly one wins', async () => {
    const e = await w.cp.nodes.create({ name: 'sn1', address: '127.0.0.1' }, 'test');
    const results = await Promise.allSettled([w.cp.nodes.enroll('sn1', e.enrollToken, key1.certPem), w.cp.nodes.enroll('sn1', e.enrollToken, key2.certPem)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const fp = (await w.cp.nodes.get('sn1')).keyFingerprint;
    expect([key1.fingerprint, key2.fingerprint]).toContain(fp);
  });

  it('refuses a wrong, expired, other-node, agent-kind or malformed token and a junk or key-bearing certificate, changing nothing, with one uniform answer', async () => {
    const e1 = await w.cp.nodes.create({ name: 'sn1', address: '127.0.0.1' }, 'test');
    const e2 = await w.cp.nodes.create({ name: 'sn2', address: '127.0.0.2' }, 'test');
    const expired = await w.cp.nodes.create({ name: 'sn3', address: '127.0.0.3' }, 'test');
    await w.store.db.updateTable('nodes').set({ enroll_expires_at: new Date(Date.now() - 1000).toISOString() }).where('name', '=', 'sn3').execute();
    const p1 = parseEnrollmentToken(e1.enrollToken);
    const guessed = formatEnrollmentToken({ ...p1, secret: 'A'.repeat(32) });
    const agentKind = formatEnrollmentToken({ ...p1, kind: 'agent' });
    const refusals = await Promise.all([
      expectCode(w.cp.nodes.enroll('sn1', guessed, key1.certPem), 'ENROLLMENT_INVALID'),
      expectCode(w.cp.nodes.enroll('sn1', e2.enrollToken, key1.certPem), 'ENROLLMENT_INVALID'),
      expectCode(w.cp.nodes.enroll('nope', e1.enrollToken, key1.certPem), 'ENROLLMENT_INVALID'),
      expectCode(w.cp.nodes.enroll('sn3', expired.enrollToken, key1.certPem), 'ENROLLMENT_INVALID'),
    ]);
    expect(new Set(refusals.map((r) => r.message)).size, 'unknown node, wrong, other node\'s and expired tokens answer alike').toBe(1);
    await expectRefusedChangingNothing(w, [
      ['ENROLLMENT_INVALID', () => w.cp.nodes.enroll('sn1', guessed, key1.certPem)],
      ['ENROLLMENT_INVALID', () => w.cp.nodes.enroll('sn1', e2.enrollToken, key1.certPem)],
      ['ENROLLMENT_INVALID', () => w.cp.nodes.enroll('nope', e1.enrollToken, key1.certPem)],
      ['ENROLLMENT_INVALID', () => w.cp.nodes.enroll('sn3', expired.enrollToken, key1.certPem)],
      ['ENROLLMENT_INVALID', () => w.cp.nodes.enroll('sn1', agentKind, key1.certPem)],
      ['ENROLLMENT_INVALID', () => w.cp.nodes.enroll('sn1', 'not a token at all', key1.certPem)],
      ['ENROLLMENT_INVALID', () => w.cp.nodes.enroll('sn1', e1.enrollToken, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')],
      ['ENROLLMENT_INVALID', () => w.cp.nodes.enroll('sn1', e1.enrollToken, `${key1.keyPem}${key1.certPem}`)],
      ['ENROLLMENT_INVALID', () => w.cp.nodes.enroll('sn1', e1.enrollToken, `${key1.certPem}${key2.certPem}`)],
      ['ENROLLMENT_INVALID', () => w.cp.nodes.enroll('sn1', e1.enrollToken, 'x'.repeat(200))],
    ]);
    // The right token still works after all that.
    await w.cp.nodes.enroll('sn1', e1.enrollToken, key1.certPem);
  });

  it('refuses bad names, addresses and a taken name, changing nothing', async () => {
    await w.cp.nodes.create({ name: 'taken', address: '10.0.0.1' }, 'test');
    await expectRefusedChangingNothing(w, [
      ['INVALID_NAME', () => w.cp.nodes.create({ name: 'Bad Name', address: '10.0.0.1' }, 'test')],
      ['VALIDATION_FAILED', () => w.cp.nodes.create({ name: 'sn9', address: '10.0.0.1:99999' }, 'test')],
      ['VALIDATION_FAILED', () => w.cp.nodes.create({ name: 'sn9', address: 'a;b' }, 'test')],
      ['NAME_TAKEN', () => w.cp.nodes.create({ name: 'taken', address: '10.0.0.2' }, 'test')],
      ['NODE_NOT_FOUND', () => w.cp.nodes.drain('absent', 'test')],
      ['NODE_NOT_FOUND', () => w.cp.nodes.delete('absent', 'test')],
      ['NODE_NOT_FOUND', () => w.addDirBackend('b1', { node: 'absent' })],
    ]);
  });

  it('drains and resumes a node', async () => {
    const e = await w.cp.nodes.create({ name: 'sn1', address: '127.0.0.1' }, 'test');
    await w.cp.nodes.enroll('sn1', e.enrollToken, key1.certPem);
    expect(await w.cp.nodes.drain('sn1', 'test')).toMatchObject({ adminState: 'draining', state: 'draining' });
    expect(await w.cp.nodes.resume('sn1', 'test')).toMatchObject({ adminState: 'active', state: 'syncing' });
    const kinds = (await w.store.db.selectFrom('operations').select('kind').orderBy('created_at').execute()).map((o) => o.kind);
    expect(kinds).toEqual(['node.create', 'node.drain', 'node.resume']);
  });

  it('rekey keeps the old pin until the node enrolls with the new token, which replaces it; the old token is void', async () => {
    const e = await w.cp.nodes.create({ name: 'sn1', address: '127.0.0.1' }, 'test');
    const first = await w.cp.nodes.rekey('sn1', 'test');
    await expectCode(w.cp.nodes.enroll('sn1', e.enrollToken, key1.certPem), 'ENROLLMENT_INVALID');
    await w.cp.nodes.enroll('sn1', first.enrollToken, key1.certPem);
    const r = await w.cp.nodes.rekey('sn1', 'test');
    expect(r.node.keyFingerprint, 'the old pin stays valid meanwhile').toBe(key1.fingerprint);
    expect(r.node.enrollmentExpiresAt).toBe(r.enrollExpiresAt);
    await w.cp.nodes.enroll('sn1', r.enrollToken, key2.certPem);
    expect((await w.cp.nodes.get('sn1')).keyFingerprint).toBe(key2.fingerprint);
  });

  it('revoke clears the pin and any outstanding token: the node is enrolling again', async () => {
    const e = await w.cp.nodes.create({ name: 'sn1', address: '127.0.0.1' }, 'test');
    await w.cp.nodes.enroll('sn1', e.enrollToken, key1.certPem);
    const r = await w.cp.nodes.rekey('sn1', 'test');
    expect(await w.cp.nodes.revoke('sn1', 'test')).toMatchObject({ state: 'enrolling', keyFingerprint: null, keyExpiresAt: null, enrollmentExpiresAt: null });
    await expectCode(w.cp.nodes.enroll('sn1', r.enrollToken, key1.certPem), 'ENROLLMENT_INVALID');
  });

  it('a backend may run on a node (shown by name); the node cannot be deleted while it does, naming the backend', async () => {
    await w.cp.nodes.create({ name: 'sn1', address: '127.0.0.1' }, 'test');
    const dir = `${w.scratchDir}/on-node`;
    const { backend } = await w.cp.backends.create({ name: 'ssd1', driver: `dir://${dir}`, node: 'sn1' }, 'test');
    expect(backend.node).toBe('sn1');
    expect((await w.cp.backends.list(ALL)).items.find((b) => b.name === 'ssd1')?.node).toBe('sn1');
    expect((await w.cp.nodes.get('sn1')).backends).toEqual(['ssd1']);
    // Same path, but on another machine (the control plane): no overlap.
    const { backend: local } = await w.cp.backends.create({ name: 'here', driver: `dir://${dir}` }, 'test');
    expect(local.node).toBeNull();
    // Same path on the same node: refused.
    await expectCode(w.cp.backends.create({ name: 'twin', driver: `dir://${dir}`, node: 'sn1' }, 'test'), 'BACKEND_PATH_OVERLAP');
    const e = await expectCode(w.cp.nodes.delete('sn1', 'test'), 'NODE_IN_USE');
    expect(e.message).toContain('ssd1');
    expect(e.details).toMatchObject({ backends: ['ssd1'] });
    await w.cp.backends.delete('ssd1', 'test');
    await w.cp.nodes.delete('sn1', 'test');
    await expectCode(w.cp.nodes.get('sn1'), 'NODE_NOT_FOUND');
  });
});
