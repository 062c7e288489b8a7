import type { ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ApiClient, clientFor, ensureBuilt, killAllSpawned, makeTempDir, pollUntil, reachedFailpoints, removeTempDir, spawnServer,
  type SpawnedServer,
} from '../helpers/server.js';
import { afterFullReconcilePass } from '../helpers/activity.js';
import { startLab, type Lab, type LabHost } from '../lab/lab.js';
import {
  MiB, killChild, loginOf, openSession, readCapacity, readsPattern, sessionsFrom, showAccounts, showTargets, tgtUri, writeAndVerify,
  type Connection, type GrantView,
} from './e2e-kit.js';

/**
 * kill -9 of the real server (`node dist/main.js serve`) in the middle of a grant or a revoke, at
 * the failpoints of the grant operations. After a restart the operation finishes by itself and
 * tgtd's ACL and CHAP accounts match the grant's final state: a granted host logs in, a revoked one
 * cannot, and no ACL is left behind.
 */
describe('kill -9 during grant and revoke: the restarted server converges, and tgtd matches the grants', () => {
  let lab: Lab;
  let h1: LabHost;
  let h2: LabHost;
  let dataDir: string;
  const children: ChildProcess[] = [];
  const volumeIds = new Map<string, string>();

  /** Starts the built server on the shared data dir, with failpoints or none. */
  async function serve(failpoints?: string): Promise<{ srv: SpawnedServer; api: ApiClient }> {
    const srv = await spawnServer({
      dataDir,
      ...(failpoints !== undefined ? { failpoints } : {}),
      // Reconcile every second so a half-done grant is repaired within the test; twins on the shipped timings: test/defaults/tgtd-restart.ts, test/defaults/replica-lease.ts.
      env: { STOWAGE_DEFAULT_BACKEND: 'false', STOWAGE_RECONCILE_INTERVAL_MS: '1000' },
    });
    return { srv, api: clientFor(srv) };
  }

  /** Sends a request the failpoint may kill the server under; only a clean 202 or a dropped connection are fine. */
  async function submitThenDie(srv: SpawnedServer, api: ApiClient, method: string, path: string, body?: unknown): Promise<void> {
    try {
      const r = await api.request(method, path, body !== undefined ? { body } : {});
      expect([202, 200]).toContain(r.status);
    } catch (err) {
      expect(String(err)).toMatch(/fetch failed|ECONNRESET|socket/i);
    }
    const exit = await srv.exited;
    expect(exit.signal).toBe('SIGKILL');
  }

  async function grantOf(api: ApiClient, volume: string, host: string): Promise<GrantView | undefined> {
    return (await api.ok<{ items: GrantView[] }>('GET', `/v1/volumes/${volume}/grants`, 200)).items.find((g) => g.hostName === host);
  }

  async function targetOf(iqn: string): Promise<{ acl: string[]; accounts: string[] }> {
    const t = (await showTargets(lab)).find((x) => x.iqn === iqn);
    return { acl: [...(t?.aclAddresses ?? [])], accounts: [...(t?.accounts ?? [])] };
  }

  beforeAll(async () => {
    await ensureBuilt();
    lab = await startLab({ hosts: 3, tgtd: true, btrfs: true, xfs: true });
    [h1, h2] = [lab.host('h1'), lab.host('h2')];
    dataDir = makeTempDir('stowage-e2e-kill-');
    const { srv, api } = await serve();
    for (const h of lab.hosts) await api.ok('POST', '/v1/hosts', 201, { body: { name: h.name, initiatorName: h.initiatorName, addresses: [h.address] } });
    await api.ok('POST', '/v1/backends', 201, { body: { name: 'san', driver: tgtUri(lab, `btrfs://${lab.btrfsDir}/pool`) } });
    await pollUntil('backend san online', async () => {
      const b = await api.ok<{ state: string; capabilities: string[] }>('GET', '/v1/backends/san', 200);
      return b.state === 'enabled' && b.capabilities.includes('access.chap') ? b : undefined;
    });
    await srv.stop();
  });

  afterEach(async () => {
    await killAllSpawned();
  });

  afterAll(async () => {
    for (const c of children) killChild(c);
    await killAllSpawned();
    try {
      await lab?.stop();
    } finally {
      if (dataDir) removeTempDir(dataDir);
    }
  });

  /** Whether h1's ACL is on tgtd at the moment of each crash (the step after which the server died). */
  const boundAtCrash: Readonly<Record<string, boolean>> = {
    'grant.create/bind:before': false, 'grant.create/bind:after': true, 'grant.create/activate:before': true,
    'grant.revoke/unbind:before': true, 'grant.revoke/unbind:after': false, 'grant.revoke/finalize:before': false,
  };

  for (const failpoint of ['grant.create/bind:after', 'grant.create/bind:before', 'grant.create/activate:before']) {
    it(`${failpoint}=kill: after the restart the grant is active, the host logs in, tgtd has exactly its ACL and account`, async () => {
      const vol = `g-${failpoint.replace(/[^a-z]+/g, '-')}`.slice(0, 60);
      {
        const { srv, api } = await serve();
        const made = await api.ok<{ volume: { id: string } }>('POST', '/v1/volumes?wait=true', 200, { body: { name: vol, sizeBytes: 16 * MiB, backend: 'san' } });
        volumeIds.set(vol, made.volume.id);
        await srv.stop();
      }
      const { srv, api } = await serve(`${failpoint}=kill`);
      await submitThenDie(srv, api, 'POST', `/v1/volumes/${vol}/grants`, { host: 'h1', mode: 'rw' });
      expect(reachedFailpoints(dataDir)).toContain(failpoint);
      const volumeId = volumeIds.get(vol) ?? '';
      expect((await targetOf(`iqn.2026-11.io.stowage:${volumeId}`)).acl).toEqual(boundAtCrash[failpoint] === true ? [h1.address] : []);

      const again = await serve();
      const g = await pollUntil('the grant to finish after the restart', async () => {
        const x = await grantOf(again.api, vol, 'h1');
        return x?.state === 'active' || x?.state === 'revoked' ? x : undefined;
      });
      expect(g.state).toBe('active');
      const c = await again.api.ok<Connection>('GET', `/v1/volumes/${vol}/grants/h1/connection`, 200);
      const t = await targetOf(c.iqn ?? '');
      expect(t.acl).toEqual([h1.address]);
      expect(t.accounts).toEqual([loginOf(c).user]);
      expect((await readCapacity(lab, h1, c)).stdout.trim()).toBe(String(16 * MiB));
      await writeAndVerify(lab, h1, c, 0x42, 0, 64 * 1024);
      expect((await readCapacity(lab, h2, c)).exitCode).not.toBe(0);
      // The operation's journal says it was resumed, not redone from scratch after a failure.
      const ops = await again.api.ok<{ items: { kind: string; state: string; targetId: string }[] }>('GET', `/v1/operations?target=${g.id}`, 200);
      expect(ops.items.filter((o) => o.kind === 'grant.create').map((o) => o.state)).toEqual(['succeeded']);
      await again.srv.stop();
    });
  }

  for (const failpoint of ['grant.revoke/unbind:before', 'grant.revoke/unbind:after', 'grant.revoke/finalize:before']) {
    it(`${failpoint}=kill: after the restart the grant is revoked, the live session is gone, tgtd has no ACL or account left`, async () => {
      const vol = `r-${failpoint.replace(/[^a-z]+/g, '-')}`.slice(0, 60);
      let c: Connection;
      {
        const { srv, api } = await serve();
        await api.ok('POST', '/v1/volumes?wait=true', 200, { body: { name: vol, sizeBytes: 16 * MiB, backend: 'san' } });
        c = (await api.ok<{ connection: Connection }>('POST', `/v1/volumes/${vol}/grants?wait=true`, 200, { body: { host: 'h1', mode: 'rw' } })).connection;
        await writeAndVerify(lab, h1, c, 0x24, 0, 64 * 1024);
        await srv.stop();
      }
      const iqn = c.iqn ?? '';
      const session = openSession(h1, c);
      children.push(session);
      await pollUntil('a session from h1', async () => ((await sessionsFrom(lab, iqn, h1.address)) > 0 ? true : undefined));

      const { srv, api } = await serve(`${failpoint}=kill`);
      await submitThenDie(srv, api, 'DELETE', `/v1/volumes/${vol}/grants/h1`);
      expect(reachedFailpoints(dataDir)).toContain(failpoint);
      expect((await targetOf(iqn)).acl).toEqual(boundAtCrash[failpoint] === true ? [h1.address] : []);

      const again = await serve();
      await pollUntil('the revoke to finish after the restart', async () => ((await grantOf(again.api, vol, 'h1')) === undefined ? true : undefined));
      await pollUntil('h1\'s session to be gone', async () => ((await sessionsFrom(lab, iqn, h1.address)) === 0 ? true : undefined));
      await afterFullReconcilePass(again.api, 'san'); // a whole reconcile pass after the revoke: nothing comes back
      expect(await targetOf(iqn)).toEqual({ acl: [], accounts: [] });
      expect(await showAccounts(lab)).not.toContain(loginOf(c).user);
      expect(await sessionsFrom(lab, iqn, h1.address)).toBe(0);
      expect((await readCapacity(lab, h1, c)).exitCode).not.toBe(0);
      // The data is still there for the next host granted access.
      const c2 = (await again.api.ok<{ connection: Connection }>('POST', `/v1/volumes/${vol}/grants?wait=true`, 200, { body: { host: 'h2', mode: 'ro' } })).connection;
      expect(await readsPattern(lab, h2, c2, 0x24, 0, 64 * 1024)).toBe(true);
      expect((await targetOf(iqn)).acl).toEqual([h2.address]);
      killChild(session);
      await again.srv.stop();
    });
  }
});
