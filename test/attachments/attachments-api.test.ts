import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError } from '../api/api-kit.js';
import { pollUntil, type JsonClient } from '../helpers/server.js';
import { startInjectServer, type InjectServer } from '../helpers/inject.js';

/**
 * Attachments, grants, snapshots and fencing through the real HTTP API on the local dir backend.
 * The host agent is played by the test through the real report endpoint (the QEMU-backed agent has
 * its own lab tests): this checks the control plane's rules and state machine on their own.
 */
interface Att { id: string; state: string; deviceId: string | null; hostName: string; stateReason: string | null }
interface AgentAnswer { hostState: string; desired: { attachmentId: string; volumeId: string; instance: string; connection: { protocol: string; path?: string } }[] }

describe('attachments, grants, snapshots and fencing (API, dir backend)', () => {
  let s: InjectServer;
  let api: JsonClient;
  const connected = new Map<string, { volumeId: string; instance: string; deviceId: string }[]>();

  /** Waits until the server has marked `host` down (its agent stopped reporting). */
  async function hostDown(host: string): Promise<void> {
    await pollUntil(`${host} marked down`, async () => ((await api.ok<{ state: string }>('GET', `/v1/hosts/${host}`, 200)).state === 'down' ? true : undefined));
  }

  /** One agent heartbeat for `host`, reporting what the test says is connected there. */
  async function report(host: string, address: string): Promise<AgentAnswer> {
    return api.ok<AgentAnswer>('POST', `/v1/agents/${host}/report`, 200, {
      body: { addresses: [address], connectors: ['file'], instances: ['vm1', 'vm2'], connected: connected.get(host) ?? [] },
    });
  }

  /** A fake agent that connects exactly what it is told to (like the real one converges). */
  async function converge(host: string, address: string): Promise<AgentAnswer> {
    const answer = await report(host, address);
    connected.set(host, answer.desired.map((d) => ({ volumeId: d.volumeId, instance: d.instance, deviceId: `stw-dev-${d.volumeId}` })));
    return report(host, address);
  }

  beforeAll(async () => {
    // Down after 1.5 s, short connect/disconnect waits and a 20 ms poll so the down/timeout paths show in seconds; host down on the shipped timings: test/defaults/host-down.ts.
    s = await startInjectServer({ hostDownAfterMs: 1500, disconnectTimeoutMs: 3000, connectTimeoutMs: 20_000, operationPollMs: 20 });
    api = s.api;
    await api.ok('POST', '/v1/volumes?wait=true', 200, { body: { name: 'data1', sizeBytes: 8 * 1024 * 1024 } });
    await api.ok('POST', '/v1/volumes?wait=true', 200, { body: { name: 'data2', sizeBytes: 8 * 1024 * 1024 } });
    // Agents report only for registered hosts.
    await api.ok('POST', '/v1/hosts', 201, { body: { name: 'hv-a', addresses: ['10.99.200.2'] } });
    await api.ok('POST', '/v1/hosts', 201, { body: { name: 'hv-b', addresses: ['10.99.200.3'] } });
    await converge('hv-a', '10.99.200.2');
    await converge('hv-b', '10.99.200.3');
  });
  afterAll(async () => { await s.close(); });

  it('attaches through grant → agent connect → attached, and the agent gets the file path', async () => {
    const r = await api.ok<{ attachment: Att }>('POST', '/v1/volumes/data1/attachments', 202, { body: { host: 'hv-a', instance: 'vm1' } });
    expect(r.attachment.state).toBe('granting');
    const answer = await pollUntil('desired set includes data1', async () => {
      const a = await report('hv-a', '10.99.200.2');
      return a.desired.length > 0 ? a : undefined;
    });
    expect(answer.desired[0]?.connection.protocol).toBe('file');
    expect(answer.desired[0]?.connection.path).toContain(s.dataDir);
    await converge('hv-a', '10.99.200.2');
    const att = await pollUntil('attached', async () => {
      const a = await api.ok<Att>('GET', `/v1/attachments/${r.attachment.id}`, 200);
      return a.state === 'attached' ? a : undefined;
    });
    expect(att.deviceId).toMatch(/^stw-dev-vol-/);
  });

  it('granting again to a host the volume is attached to answers with that access (the attach made the grant)', async () => {
    const before = await api.ok<{ items: { id: string; hostName: string; state: string }[] }>('GET', '/v1/volumes/data1/grants', 200);
    expect(before.items.map((g) => `${g.hostName}:${g.state}`)).toEqual(['hv-a:active']);
    const again = await api.ok<{ grant: { id: string; state: string }; operation: { kind: string; state: string }; connection: { protocol: string } | null }>(
      'POST', '/v1/volumes/data1/grants?wait=true', 200, { body: { host: 'hv-a', mode: 'rw' } });
    expect(again.grant).toMatchObject({ id: before.items[0]?.id, state: 'active' });
    expect(again.operation).toMatchObject({ kind: 'attachment.attach', state: 'succeeded' });
    expect(again.connection?.protocol).toBe('file');
    expect((await api.ok<{ items: { id: string }[] }>('GET', '/v1/volumes/data1/grants', 200)).items.map((g) => g.id)).toEqual([before.items[0]?.id]);
  });

  it('refuses a second read-write attachment on another host while the first host is up', async () => {
    await converge('hv-a', '10.99.200.2');
    const r = await api.request('POST', '/v1/volumes/data1/attachments', { body: { host: 'hv-b', instance: 'vm1' } });
    const e = expectError(r, 409, 'VOLUME_IN_USE');
    expect(e.message).toContain('hv-a');
  });

  it('refuses it with HOST_NOT_FENCED naming the host once that host is down, then allows it after the fence', async () => {
    await hostDown('hv-a'); // hv-a stops reporting
    await converge('hv-b', '10.99.200.3');
    const r = await api.request('POST', '/v1/volumes/data1/attachments', { body: { host: 'hv-b', instance: 'vm1' } });
    const e = expectError(r, 409, 'HOST_NOT_FENCED');
    expect(e.message).toContain('stowage host fence hv-a');
    const op = await api.ok<{ state: string }>('POST', '/v1/hosts/hv-a/fence?wait=true', 200);
    expect(op.state).toBe('succeeded');
    const hostA = await api.ok<{ state: string }>('GET', '/v1/hosts/hv-a', 200);
    expect(hostA.state).toBe('fenced');
    const cut = await api.ok<{ items: Att[] }>('GET', '/v1/attachments?host=hv-a&all=true', 200);
    // hv-a held exactly one attachment (data1 for vm1): it was cut.
    expect(cut.items.map((a) => `${a.hostName}:${a.state}:${a.stateReason ?? ''}`)).toEqual(['hv-a:gone:host fenced']);
    // A fenced host's agent is told to disconnect everything.
    const answer = await report('hv-a', '10.99.200.2');
    expect(answer.hostState).toBe('fenced');
    expect(answer.desired).toEqual([]);
    // Evacuation attaches what hv-a had to the same instance on hv-b.
    const ev = await api.ok<{ items: { id: string }[] }>('POST', '/v1/hosts/hv-a/evacuate', 202, { body: { to: 'hv-b' } });
    expect(ev.items.length).toBe(1);
    await pollUntil('hv-b attached data1', async () => {
      await converge('hv-b', '10.99.200.3');
      const list = await api.ok<{ items: Att[] }>('GET', '/v1/attachments?volume=data1', 200);
      return list.items.find((a) => a.hostName === 'hv-b' && a.state === 'attached');
    });
  });

  it('detaches: the agent disconnects, access is revoked, the attachment is gone', async () => {
    const d = await api.ok<{ items: { attachment: Att }[] }>('POST', '/v1/volumes/data1/detach', 202, { body: {} });
    const id = d.items[0]?.attachment.id ?? '';
    await pollUntil('gone', async () => {
      await converge('hv-b', '10.99.200.3');
      const a = await api.ok<Att>('GET', `/v1/attachments/${id}`, 200);
      return a.state === 'gone' ? a : undefined;
    });
    const grants = await api.ok<{ items: unknown[] }>('GET', '/v1/volumes/data1/grants', 200);
    expect(grants.items).toEqual([]);
  });

  it('revokes even when the host is down (the detach does not wait forever)', async () => {
    await converge('hv-b', '10.99.200.3');
    await api.ok('POST', '/v1/volumes/data2/attachments', 202, { body: { host: 'hv-b', instance: 'vm2' } });
    await pollUntil('attached', async () => {
      await converge('hv-b', '10.99.200.3');
      const list = await api.ok<{ items: Att[] }>('GET', '/v1/attachments?volume=data2', 200);
      return list.items.find((a) => a.state === 'attached');
    });
    await hostDown('hv-b'); // hv-b goes silent with the disk still connected
    const d = await api.ok<{ items: { attachment: Att; operation: { stepsDone: { name: string; note?: string }[] } }[] }>('POST', '/v1/volumes/data2/detach?wait=true', 200, { body: {} });
    expect(d.items[0]?.attachment.state).toBe('gone');
    expect(d.items[0]?.operation.stepsDone.find((x) => x.name === 'disconnect')?.note).toBe('host-down');
    expect((await api.ok<{ items: unknown[] }>('GET', '/v1/volumes/data2/grants', 200)).items).toEqual([]);
  });

  it('grants return connection info once, list grants without secrets, and the events never carry them', async () => {
    await api.ok('POST', '/v1/hosts', 201, { body: { name: 'reader1', addresses: ['10.99.200.9'] } });
    await api.ok('POST', '/v1/hosts', 201, { body: { name: 'reader2', addresses: ['10.99.200.10'] } });
    const g1 = await api.ok<{ connection: { protocol: string } }>('POST', '/v1/volumes/data2/grants?wait=true', 200, { body: { host: 'reader1', mode: 'ro' } });
    expect(g1.connection.protocol).toBe('file');
    await api.ok('POST', '/v1/volumes/data2/grants?wait=true', 200, { body: { host: 'reader2', mode: 'ro' } });
    const rw = await api.request('POST', '/v1/volumes/data2/grants', { body: { host: 'hv-b', mode: 'rw' } });
    expectError(rw, 409, 'VOLUME_IN_USE');
    const list = await api.ok<{ items: { hostName: string; connection: Record<string, unknown> | null }[] }>('GET', '/v1/volumes/data2/grants', 200);
    expect(list.items.map((g) => g.hostName).sort()).toEqual(['reader1', 'reader2']);
    for (const g of list.items) expect(g.connection && 'chapSecret' in g.connection).toBe(false);
    const revert = await api.request('POST', '/v1/volumes/data2/revert', { body: { snapshot: 'nope' } });
    expectError(revert, 404, 'SNAPSHOT_NOT_FOUND');
    for (const h of ['reader1', 'reader2']) await api.ok('DELETE', `/v1/volumes/data2/grants/${h}?wait=true`, 200);
  });

  it('snapshots and reverts (refused while any host has access)', async () => {
    const snap = await api.ok<{ snapshot: { state: string; method: string } }>('POST', '/v1/snapshots?wait=true', 200, { body: { volume: 'data2', name: 's1' } });
    expect(snap.snapshot.state).toBe('available');
    expect(snap.snapshot.method).toMatch(/reflink|copy|qcow2/);
    await api.ok('POST', '/v1/volumes/data2/grants?wait=true', 200, { body: { host: 'reader1', mode: 'ro' } });
    expectError(await api.request('POST', '/v1/volumes/data2/revert', { body: { snapshot: 's1' } }), 409, 'VOLUME_IN_USE');
    await api.ok('DELETE', '/v1/volumes/data2/grants/reader1?wait=true', 200);
    const rv = await api.ok<{ volume: { state: string } }>('POST', '/v1/volumes/data2/revert?wait=true', 200, { body: { snapshot: 's1' } });
    expect(rv.volume.state).toBe('available');
    await api.ok('DELETE', '/v1/snapshots/s1?wait=true', 200);
  });

  it('an attach with no agent answering times out into error and leaves no grant behind', async () => {
    // Connect timeout 500 ms so the no-agent timeout is reached in the test (the 120 s default has no defaults-tier twin yet).
    const quick = await startInjectServer({ connectTimeoutMs: 500, operationPollMs: 20 });
    try {
      await quick.api.ok('POST', '/v1/volumes?wait=true', 200, { body: { name: 'lonely', sizeBytes: 4 * 1024 * 1024 } });
      await quick.api.ok('POST', '/v1/hosts', 201, { body: { name: 'silent', addresses: ['10.99.200.20'] } });
      const r = await quick.api.request('POST', '/v1/volumes/lonely/attachments?wait=true', { body: { host: 'silent', instance: 'vm1' } });
      const e = expectError(r, 504, 'TIMEOUT');
      expect(e.message).toContain('agent');
      const list = await quick.api.ok<{ items: Att[] }>('GET', '/v1/attachments?volume=lonely', 200);
      expect(list.items.map((a) => a.state)).toEqual(['error']);
      expect((await quick.api.ok<{ items: unknown[] }>('GET', '/v1/volumes/lonely/grants', 200)).items).toEqual([]);
    } finally {
      await quick.close();
    }
  });
});

describe('multi-attach volumes', () => {
  it('are placed only on backends with the multiattach capability, and may be attached read-write to two hosts', async () => {
    // Poll 20 ms so the operations here start at once; operations on the shipped poll: test/defaults/replica-lease.ts.
    const s = await startInjectServer({ operationPollMs: 20 });
    try {
      const refused = await s.api.request('POST', '/v1/volumes', { body: { name: 'shared', sizeBytes: 4 * 1024 * 1024, multiattach: true } });
      const e = expectError(refused, 422, 'NO_VALID_BACKEND');
      expect(e.message).toContain('multiattach');
      // An operator declares the local backend fit for it (an admin capability override).
      await s.api.ok('PATCH', '/v1/backends/local', 200, { body: { capabilityOverrides: { add: ['multiattach'], remove: [] } } });
      const v = await s.api.ok<{ volume: { multiattach: boolean } }>('POST', '/v1/volumes?wait=true', 200, { body: { name: 'shared', sizeBytes: 4 * 1024 * 1024, multiattach: true } });
      expect(v.volume.multiattach).toBe(true);
      for (const [host, ip] of [['mh-a', '10.99.201.2'], ['mh-b', '10.99.201.3']] as const) {
        await s.api.ok('POST', '/v1/hosts', 201, { body: { name: host, addresses: [ip] } });
        await s.api.ok('POST', `/v1/agents/${host}/report`, 200, { body: { addresses: [ip], connectors: ['file'], instances: ['vm1'], connected: [] } });
        const r = await s.api.ok<{ attachment: Att }>('POST', '/v1/volumes/shared/attachments', 202, { body: { host, instance: 'vm1' } });
        expect(r.attachment.state).toBe('granting');
      }
      const grants = await pollUntil('both hosts granted', async () => {
        const g = await s.api.ok<{ items: { hostName: string; mode: string; state: string }[] }>('GET', '/v1/volumes/shared/grants', 200);
        return g.items.filter((x) => x.state === 'active').length === 2 ? g.items : undefined;
      });
      expect(grants.map((g) => [g.hostName, g.mode]).sort()).toEqual([['mh-a', 'rw'], ['mh-b', 'rw']]);
    } finally {
      await s.close();
    }
  });
});
