import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError } from '../api/api-kit.js';
import { afterFullReconcilePass } from '../helpers/activity.js';
import { pollUntil, readToken, sleep } from '../helpers/server.js';
import { hashToken } from '../../src/core/token-hash.js';
import { startLab, type Lab, type LabHost } from '../lab/lab.js';
import {
  MiB, createVolume, ensureDir, grant, killChild, listAll, loginOf, openSession, qemuIo, readCapacity, readsPattern, registerBackend,
  registerLabHosts, revoke, sessionsFrom, showAccounts, showTargets, startE2eServer, tgtUri, writeAndVerify,
  type BackendView, type Connection, type E2eServer, type EventView, type GrantView,
} from './e2e-kit.js';

/**
 * Issue 4 end to end, through the real control plane: HTTP API → services → operations → tgt
 * driver → a real tgtd → real libiscsi/QEMU initiators inside the lab's namespace hosts. Hosts log
 * in with nothing but the connection info the API answered with.
 */
describe('iSCSI access through the API: tgt over btrfs and XFS, real initiators in namespaces', () => {
  let lab: Lab;
  let s: E2eServer;
  let h1: LabHost;
  let h2: LabHost;
  let h3: LabHost;
  const children: ChildProcess[] = [];
  /** Every CHAP secret the API handed out in this file. */
  const secrets = new Set<string>();
  const granted = async (volume: string, host: string, mode: 'rw' | 'ro' = 'rw'): Promise<Connection> => {
    const c = await grant(s.api, volume, host, mode);
    if (c.chapSecret !== undefined) secrets.add(c.chapSecret);
    return c;
  };
  /**
   * A fresh 64 MiB btrfs volume granted read-write to h1, for a test that must not lean on what
   * earlier tests left; with `data`, h1 has written 0xab at 0 and 0x5c at 32 MiB through iSCSI.
   */
  const grantedToH1 = async (volume: string, data: boolean): Promise<Connection> => {
    await createVolume(s.api, volume, 64 * MiB, 'san-btrfs');
    const c = await granted(volume, 'h1', 'rw');
    if (data) {
      await writeAndVerify(lab, h1, c, 0xab, 0, 64 * 1024);
      await writeAndVerify(lab, h1, c, 0x5c, 32 * MiB, 1 * MiB);
    }
    return c;
  };

  beforeAll(async () => {
    lab = await startLab({ hosts: 3, tgtd: true, btrfs: true, xfs: true });
    [h1, h2, h3] = [lab.host('h1'), lab.host('h2'), lab.host('h3')];
    s = await startE2eServer();
    await registerLabHosts(s.api, lab);
    // Registered here, not in the first test, so every test can run on its own.
    await registerBackend(s.api, 'san-btrfs', tgtUri(lab, `btrfs://${lab.btrfsDir}/pool`));
    await registerBackend(s.api, 'san-xfs', tgtUri(lab, `dir://${ensureDir(join(lab.xfsDir, 'luns'))}`));
  });

  afterAll(async () => {
    for (const c of children) killChild(c);
    try {
      await s?.close();
    } finally {
      await lab?.stop();
    }
  });

  it('registers a tgt backend over btrfs and one over dir on XFS; the probe shows offload from the backing store and tgt\'s access control', async () => {
    const btrfs = await s.api.ok<BackendView>('GET', '/v1/backends/san-btrfs', 200);
    expect(btrfs.state).toBe('enabled');
    expect(btrfs.capabilities).toEqual(expect.arrayContaining(['snapshot', 'snapshot.offload', 'clone', 'clone.offload', 'revert', 'thin', 'resize', 'access.address', 'access.chap', 'format.raw']));
    const xfs = await s.api.ok<BackendView>('GET', '/v1/backends/san-xfs', 200);
    expect(xfs.state).toBe('enabled');
    expect(xfs.capabilities).toEqual(expect.arrayContaining(['snapshot.offload', 'clone.offload', 'access.address', 'access.chap']));
    // A tgt backend whose tgtd does not answer is registered offline, saying why.
    await s.api.ok('POST', '/v1/backends', 201, { body: { name: 'san-dead', driver: `tgt://${lab.portal}?backing=${encodeURIComponent(`btrfs://${lab.btrfsDir}/dead`)}&control=1` } });
    const dead = await pollUntil('san-dead to be probed', async () => {
      const b = await s.api.ok<{ state: string; stateReason: string | null }>('GET', '/v1/backends/san-dead', 200);
      return b.state === 'offline' ? b : undefined;
    });
    expect(dead.stateReason).toMatch(/control port 1/);
    await s.api.ok('DELETE', '/v1/backends/san-dead', 204);
  });

  it('a granted host reads the capacity and the data it wrote; an ungranted host, a wrong CHAP secret and no CHAP are refused', async () => {
    const data1 = await createVolume(s.api, 'data1', 64 * MiB, 'san-btrfs');
    const c1 = await granted('data1', 'h1', 'rw');
    expect(c1).toMatchObject({ protocol: 'iscsi', portal: lab.portal, iqn: `iqn.2026-11.io.stowage:${data1.id}`, lun: 1, chapUser: `stw-h1.${data1.id}`, mode: 'rw' });
    expect(c1.chapSecret?.length).toBeGreaterThanOrEqual(12);

    const cap = await readCapacity(lab, h1, c1);
    expect(cap.exitCode).toBe(0);
    expect(cap.stdout.trim()).toBe(String(64 * MiB));
    await writeAndVerify(lab, h1, c1, 0xab, 0, 64 * 1024);
    await writeAndVerify(lab, h1, c1, 0x5c, 32 * MiB, 1 * MiB);
    // A second, separate login reads back what the first one wrote.
    expect(await readsPattern(lab, h1, c1, 0xab, 0, 64 * 1024)).toBe(true);
    expect(await readsPattern(lab, h1, c1, 0x5c, 32 * MiB, 1 * MiB)).toBe(true);

    // h2 has no grant: even with h1's credentials tgtd does not show it the target.
    const other = await readCapacity(lab, h2, c1);
    expect(other.exitCode).not.toBe(0);
    expect(other.stderr).toMatch(/Target not found|Login Failed/i);
    const otherIo = await qemuIo(lab, h2, c1, ['read 0 4k'], { readonly: true });
    expect(otherIo.stdout).not.toContain('read 4096/4096 bytes');

    const secret = loginOf(c1).secret;
    const wrongSecret = `${secret.slice(0, -2)}${secret.endsWith('xx') ? 'yy' : 'xx'}`;
    const wrong = await readCapacity(lab, h1, c1, { user: loginOf(c1).user, secret: wrongSecret });
    expect(wrong.exitCode).not.toBe(0);
    expect(wrong.stderr).toMatch(/Authentication failure/i);
    const none = await readCapacity(lab, h1, c1, null);
    expect(none.exitCode).not.toBe(0);

    // The audited connection endpoint gives the same credentials back.
    expect(await s.api.ok<Connection>('GET', '/v1/volumes/data1/grants/h1/connection', 200)).toEqual(c1);
    // tgtd holds exactly what the grant says: h1's address ACL and its per-volume account.
    const target = (await showTargets(lab)).find((t) => t.iqn === c1.iqn);
    expect(target?.aclAddresses).toEqual([h1.address]);
    expect(target?.accounts).toEqual([loginOf(c1).user]);
  });

  it('a read-write grant excludes a second host (409) without touching the first host\'s access', async () => {
    const c1 = await grantedToH1('excl1', false);
    const r = await s.api.request('POST', '/v1/volumes/excl1/grants?wait=true', { body: { host: 'h2', mode: 'ro' } });
    expect(expectError(r, 409, 'VOLUME_IN_USE').message).toContain('h1');
    expect((await readCapacity(lab, h1, c1)).exitCode).toBe(0);
  });

  it('revoking h1 while its session is open drops the live session, and the next login is refused', async () => {
    const c1 = await grantedToH1('rev1', false);
    const iqn = c1.iqn ?? '';
    const child = openSession(h1, c1);
    children.push(child);
    await pollUntil('a session from h1', async () => ((await sessionsFrom(lab, iqn, h1.address)) > 0 ? true : undefined), 60_000);

    await revoke(s.api, 'rev1', 'h1');
    await pollUntil('h1\'s session to be dropped', async () => ((await sessionsFrom(lab, iqn, h1.address)) === 0 ? true : undefined), 60_000);
    // The initiator retries its login by itself; it must stay out.
    await sleep(2000);
    expect(await sessionsFrom(lab, iqn, h1.address)).toBe(0);
    const again = await readCapacity(lab, h1, c1);
    expect(again.exitCode).not.toBe(0);
    expect(await showAccounts(lab)).not.toContain(loginOf(c1).user);
    expect((await showTargets(lab)).find((t) => t.iqn === iqn)?.aclAddresses).toEqual([]);
    expect((await s.api.ok<{ items: GrantView[] }>('GET', '/v1/volumes/rev1/grants', 200)).items).toEqual([]);
    expectError(await s.api.request('GET', '/v1/volumes/rev1/grants/h1/connection'), 404, 'NOT_FOUND');
    killChild(child);
  });

  it('two hosts granted read-only both read the data; the LUN is read-only for them', async () => {
    // h1 writes the data first, then gives the volume up so it can be shared read-only.
    await grantedToH1('ro1', true);
    await revoke(s.api, 'ro1', 'h1');
    const c2 = await granted('ro1', 'h2', 'ro');
    const c3 = await granted('ro1', 'h3', 'ro');
    expect(c2.mode).toBe('ro');
    expect(loginOf(c2).user).not.toBe(loginOf(c3).user);
    expect(loginOf(c2).secret).not.toBe(loginOf(c3).secret);
    expect((await readCapacity(lab, h2, c2)).stdout.trim()).toBe(String(64 * MiB));
    expect((await readCapacity(lab, h3, c3)).stdout.trim()).toBe(String(64 * MiB));
    expect(await readsPattern(lab, h2, c2, 0xab, 0, 64 * 1024)).toBe(true);
    expect(await readsPattern(lab, h3, c3, 0x5c, 32 * MiB, 1 * MiB)).toBe(true);
    // A host without a grant gets nowhere even with a granted host's credentials. (tgt binds CHAP
    // accounts per target, not per initiator, so h2 could log in with h3's account: the address ACL
    // is what tells hosts apart.)
    expect((await readCapacity(lab, h1, c3, loginOf(c3))).exitCode).not.toBe(0);
    const write = await qemuIo(lab, h2, c2, ['write -P 0x11 0 4k']);
    expect(write.stdout).not.toContain('wrote 4096/4096 bytes');
    expect((await showTargets(lab)).find((t) => t.iqn === c2.iqn)?.luns.find((l) => l.lun === 1)?.readonly).toBe(true);
    expect(await readsPattern(lab, h3, c3, 0xab, 0, 64 * 1024)).toBe(true);
    await revoke(s.api, 'ro1', 'h2');
    await revoke(s.api, 'ro1', 'h3');
    expect((await readCapacity(lab, h2, c2)).exitCode).not.toBe(0);
  });

  it('serves a volume on the XFS-backed tgt backend the same way', async () => {
    // A target on the btrfs backend too, in the same tgtd.
    const c1 = await grantedToH1('xbt1', false);
    const v = await createVolume(s.api, 'xdata', 48 * MiB, 'san-xfs');
    expect(v.backendName).toBe('san-xfs');
    const c = await granted('xdata', 'h3', 'rw');
    expect(c.iqn).toBe(`iqn.2026-11.io.stowage:${v.id}`);
    expect((await readCapacity(lab, h3, c)).stdout.trim()).toBe(String(48 * MiB));
    await writeAndVerify(lab, h3, c, 0x3e, 4 * MiB, 256 * 1024);
    expect((await readCapacity(lab, h1, c)).exitCode).not.toBe(0);
    // Both backends share one tgtd: neither reconciler takes the other's targets for orphans, which
    // is only shown once each has run a whole pass since both targets exist.
    await Promise.all([afterFullReconcilePass(s.api, 'san-btrfs'), afterFullReconcilePass(s.api, 'san-xfs')]);
    const iqns = (await showTargets(lab)).map((t) => t.iqn);
    expect(iqns).toEqual(expect.arrayContaining([c.iqn, c1.iqn]));
    const reconciles = (await listAll<EventView>(s.api, '/v1/events')).filter((e) => e.action === 'reconcile');
    // (A pass racing a revoke may legitimately tidy an ACL or account; a target must never go.)
    expect(reconciles.flatMap((e) => (e.details.removed as string[] | undefined) ?? []).filter((r) => r.startsWith('target:'))).toEqual([]);
    expect(await readsPattern(lab, h3, c, 0x3e, 4 * MiB, 256 * 1024)).toBe(true);
    await revoke(s.api, 'xdata', 'h3');
    await revoke(s.api, 'xbt1', 'h1');
  });

  it('never lets a CHAP secret out: grant lists, events, operations, error answers, the debug log, the driver ledger and the database files', async () => {
    // Its own volumes and grants: this test does not lean on what earlier tests in the file left behind.
    await createVolume(s.api, 'leak-rw', 16 * MiB, 'san-btrfs');
    await createVolume(s.api, 'leak-ro', 16 * MiB, 'san-xfs');
    const mine = [await granted('leak-rw', 'h1', 'rw'), await granted('leak-ro', 'h2', 'ro'), await granted('leak-ro', 'h3', 'ro')];
    expect(new Set(mine.map((c) => c.chapSecret)).size).toBe(3);
    expect(mine.every((c) => typeof c.chapSecret === 'string' && secrets.has(c.chapSecret))).toBe(true);
    // Some error answers to look at too.
    expectError(await s.api.request('POST', '/v1/volumes/leak-rw/grants?wait=true', { body: { host: 'h2', mode: 'rw' } }), 409, 'VOLUME_IN_USE');
    expectError(await s.api.request('POST', '/v1/volumes/leak-rw/grants?wait=true', { body: { host: 'h1', mode: 'ro' } }), 409, 'INVALID_STATE');
    expectError(await s.api.request('POST', '/v1/volumes/leak-rw/revert', { body: { snapshot: 'nope' } }), 404, 'SNAPSHOT_NOT_FOUND');
    expectError(await s.api.request('DELETE', '/v1/hosts/h1'), 409, 'HOST_IN_USE');
    await s.api.ok('POST', '/v1/snapshots?wait=true', 200, { body: { volume: 'leak-rw', name: 'snap-secret-check' } });
    expectError(await s.api.request('POST', '/v1/volumes/leak-rw/revert?wait=true', { body: { snapshot: 'snap-secret-check' } }), 409, 'VOLUME_IN_USE');

    const leaks = (where: string, text: string): string[] => [...secrets].filter((x) => text.includes(x)).map(() => where);
    const found: string[] = [];
    for (const v of ['leak-rw', 'leak-ro']) {
      const grants = await s.api.ok<{ items: GrantView[] }>('GET', `/v1/volumes/${v}/grants`, 200);
      for (const g of grants.items) expect(g.connection).not.toHaveProperty('chapSecret');
      found.push(...leaks(`GET /v1/volumes/${v}/grants`, JSON.stringify(grants)));
    }
    expect((await s.api.ok<{ items: GrantView[] }>('GET', '/v1/volumes/leak-rw/grants', 200)).items.map((g) => g.hostName)).toEqual(['h1']);
    const events = await listAll<unknown>(s.api, '/v1/events');
    expect(events.length).toBeGreaterThan(10);
    found.push(...leaks('GET /v1/events', JSON.stringify(events)));
    const ops = await listAll<unknown>(s.api, '/v1/operations');
    expect(ops.length).toBeGreaterThan(10);
    found.push(...leaks('GET /v1/operations', JSON.stringify(ops)));
    // Every answer the API gave in this file, except the two that exist to hand the secret over.
    const handOver = /^(POST \/v1\/volumes\/[^/]+\/grants\?wait=true → 200|GET \/v1\/volumes\/[^/]+\/grants\/[^/]+\/connection → 200)/;
    for (const a of s.api.answers.filter((x) => !handOver.test(x))) found.push(...leaks(a.slice(0, 80), a));
    const log = readFileSync(s.logFile, 'utf8');
    // The log really recorded this file's requests (at debug level), so the check means something.
    expect(log).toContain('/v1/volumes/leak-rw/grants');
    found.push(...leaks('server log', log));
    const ledgerDir = join(s.dataDir, 'tgt-grants');
    expect(existsSync(ledgerDir)).toBe(true);
    for (const f of readdirSync(ledgerDir)) found.push(...leaks(`ledger ${f}`, readFileSync(join(ledgerDir, f), 'utf8')));

    // At rest: the SQLite file and its write-ahead log hold neither a CHAP secret nor the admin token
    // in clear (the secrets are sealed by SecretBox, the token is stored as its SHA-256 only).
    const token = readToken(s.config.cliConfigPath);
    const files = ['stowage.db', 'stowage.db-wal'].map((f) => join(s.dataDir, f)).filter((f) => existsSync(f));
    expect(files).toContain(join(s.dataDir, 'stowage.db'));
    for (const f of files) {
      const bytes = readFileSync(f);
      for (const x of [...secrets, token]) if (bytes.includes(Buffer.from(x, 'utf8'))) found.push(`${f} (${x === token ? 'admin token' : 'CHAP secret'})`);
    }
    const sealed = await s.server.store.db.selectFrom('grants').select('chap_secret_sealed').where('chap_secret_sealed', 'is not', null).execute();
    expect(sealed.length).toBeGreaterThanOrEqual(3);
    expect(sealed.every((g) => g.chap_secret_sealed?.startsWith('v1:'))).toBe(true);
    const tokens = await s.server.store.db.selectFrom('api_tokens').select('token_hash').execute();
    expect(tokens.map((t) => t.token_hash)).toEqual([hashToken(token)]);
    expect(found).toEqual([]);
    for (const [v, h] of [['leak-rw', 'h1'], ['leak-ro', 'h2'], ['leak-ro', 'h3']] as const) await revoke(s.api, v, h);
  });
});
