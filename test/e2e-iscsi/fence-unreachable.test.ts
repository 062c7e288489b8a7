import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, pollUntil } from '../helpers/server.js';
import { startLab, type Lab } from '../lab/lab.js';
import {
  MiB, createVolume, grant, registerBackend, registerLabHosts, removeTempDir, showTargets, startE2eServer, tgtUri,
  type E2eServer, type GrantView, type OperationView, type VolumeView,
} from './e2e-kit.js';

/** Tries per step: the fence below fails after this many, each refused by the dead tgtd. */
const STEP_ATTEMPTS = 4;

/**
 * Issue 9.5: a fence against a backend that cannot be reached is retried and never recorded as done
 * before the backend confirmed. With the lab's tgtd killed, the fence's revoke fails on every try
 * (the engine retries it with backoff), the grant stays `revoking`, the host is not fenced, and the
 * volume stays refused elsewhere; once a tgtd runs again, the fence goes through.
 */
describe('fencing against an unreachable tgt backend', () => {
  let lab: Lab;
  let s: E2eServer;
  let vol: VolumeView;
  let luns = '';

  const grantsOf = async (): Promise<GrantView[]> => (await s.api.ok<{ items: GrantView[] }>('GET', '/v1/volumes/fence-vol/grants', 200)).items;
  const hostState = async (): Promise<string> => (await s.api.ok<{ state: string }>('GET', '/v1/hosts/h1', 200)).state;
  /** The engine's retry lines for one operation in the server's log. */
  const retriesOf = (operationId: string): number => readFileSync(s.logFile, 'utf8').split('\n')
    .filter((l) => l.includes('"transient failure; retrying"') && l.includes(`"operationId":"${operationId}"`)).length;

  beforeAll(async () => {
    lab = await startLab({ hosts: 2, tgtd: true, btrfs: false, xfs: false });
    s = await startE2eServer({ stepAttempts: STEP_ATTEMPTS, retryBaseMs: 50 });
    await registerLabHosts(s.api, lab);
    luns = makeTempDir('stw-fence-luns-');
    await registerBackend(s.api, 'san', tgtUri(lab, `dir://${luns}`));
    vol = await createVolume(s.api, 'fence-vol', 8 * MiB, 'san');
    await grant(s.api, 'fence-vol', 'h1', 'rw');
  });

  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      await lab?.stop();
      if (luns) removeTempDir(luns);
    }
  });

  it('keeps the grant revoking and the host unfenced while tgtd is dead, and fences once tgtd is back', async () => {
    const iqnOf = async (): Promise<string[]> => [...((await showTargets(lab)).find((t) => t.iqn.endsWith(vol.id))?.aclAddresses ?? [])];
    expect(await iqnOf()).toEqual([lab.host('h1').address]);

    const pid = lab.tgtdPid;
    process.kill(pid, 'SIGKILL');
    await pollUntil(`tgtd ${String(pid)} to exit`, () => Promise.resolve(existsSync(`/proc/${String(pid)}`) ? undefined : true), 10_000, 50);

    // The wait answers with the operation's error, which names the operation.
    const refused = await s.api.request('POST', '/v1/hosts/h1/fence?wait=true');
    expect(refused.status).toBe(503);
    const body = refused.body as { code: string; message: string; details: { operationId?: string } };
    expect(body.code).toBe('BACKEND_UNAVAILABLE');
    expect(body.message).toContain('backend san did not confirm the revoke of host h1');
    const failed = await s.api.ok<OperationView>('GET', `/v1/operations/${body.details.operationId ?? '?'}`, 200);
    expect(`${failed.kind}:${failed.state}:${failed.error?.code ?? ''}`).toBe('host.fence:failed:BACKEND_UNAVAILABLE');
    // Every try reached the dead backend: the engine retried the step until its attempts ran out.
    expect(retriesOf(failed.id)).toBe(STEP_ATTEMPTS - 1);
    // Not recorded as done: the grant is still on its way out, the host is not fenced.
    expect((await grantsOf()).map((g) => `${g.hostName}:${g.state}`)).toEqual(['h1:revoking']);
    expect(await hostState()).not.toBe('fenced');
    // And the read-write volume is still refused to another host.
    const elsewhere = await s.api.request('POST', '/v1/volumes/fence-vol/grants', { body: { host: 'h2', mode: 'rw' } });
    expect(elsewhere.status).toBe(409);

    await lab.restartTgtd();
    const done = await s.api.ok<OperationView>('POST', '/v1/hosts/h1/fence?wait=true', 200);
    expect(done.state).toBe('succeeded');
    expect(await hostState()).toBe('fenced');
    expect((await grantsOf()).filter((g) => g.state !== 'revoked')).toEqual([]);
    // The export the reconciler restores on the fresh tgtd carries no ACL for h1.
    await pollUntil('the export to be back on the fresh tgtd', async () => ((await showTargets(lab)).some((t) => t.iqn.endsWith(vol.id)) ? true : undefined), 60_000);
    expect(await iqnOf()).toEqual([]);
  }, 240_000);
});
