import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadIdentity } from '../../src/system/tls-identity.js';
import { sleep } from '../helpers/server.js';
import { NODE_PORT, startFleet, type Fleet, type FleetNodeAgent } from '../lab/fleet.js';

/**
 * Issue 10's failure model against the real lab, as a user sees it (CLI -o json): two storage
 * nodes with tgt backends, a node partitioned mid-create and healed, a node agent killed with -9
 * and restarted, an orphan LUN file removed by the full sync while a foreign one stays, a tgtd
 * restart healed while the node stays ready, and forged calls refused. Observed figures are
 * printed, never asserted; the timers are the shipped defaults.
 */

interface NodeJson { name: string; state: string; keyFingerprint: string | null; stateReason: string | null; epoch: number; unreachableSince: string | null }
interface BackendJson { name: string; state: string; stateReason: string | null }
interface VolumeJson { id: string; name: string; state: string; backendId: string }
interface OperationJson { id: string; state: string; waitingReason: string | null; error: unknown }
interface Created { volume: VolumeJson; operation: OperationJson }

const MiB = 1024 * 1024;

describe('storage-node failure model (real lab, two nodes)', () => {
  let fleet: Fleet;
  const agents = new Map<string, FleetNodeAgent>();
  const backendId = new Map<string, string>();

  const node = (name: string): Promise<NodeJson> => fleet.cliJson<NodeJson>(['node', 'show', name]);
  const backend = (name: string): Promise<BackendJson & { id: string }> => fleet.cliJson(['backend', 'show', name]);
  const operation = (id: string): Promise<OperationJson> => fleet.cliJson<OperationJson>(['operation', 'show', id]);
  const volume = (name: string): Promise<VolumeJson> => fleet.cliJson<VolumeJson>(['volume', 'show', name]);

  /** Polls `probe` every 250 ms until it returns true (or fails after limitMs); resolves with the seconds it took. */
  async function until(what: string, probe: () => Promise<boolean>, limitMs = 120_000): Promise<number> {
    const t0 = Date.now();
    while (Date.now() - t0 < limitMs) {
      if (await probe()) return (Date.now() - t0) / 1000;
      await sleep(250);
    }
    throw new Error(`${what}: not within ${String(limitMs)} ms`);
  }

  /** Files on a node's LUN directory (its tgt backing). */
  async function lunFiles(n: string): Promise<string[]> {
    const dir = join(fleet.lab.storageNode(n).dataDir, 'luns');
    const r = await fleet.lab.runInNode(n, ['ls', '-1', dir], { okExitCodes: [0, 2] });
    return r.stdout.split('\n').filter((l) => l.length > 0);
  }

  /** The ACL and account entries of every target on a node's tgtd, as `tgtadm --op show` lists them. */
  async function accessOn(n: string): Promise<string> {
    const r = await fleet.lab.nodeTgtadm(n, ['--op', 'show', '--mode', 'target']);
    const keep: string[] = [];
    let section = '';
    for (const line of r.stdout.split('\n')) {
      if (/^Target \d+:/.test(line)) keep.push(line.trim());
      else if (/^ {4}\S/.test(line)) section = line.trim();
      else if ((section === 'ACL information:' || section === 'Account information:') && line.trim()) keep.push(`  ${section.split(' ')[0] ?? ''} ${line.trim()}`);
    }
    return keep.join('\n');
  }

  /** One HTTPS request to the control plane's API (its certificate not checked: a forger does not care). */
  function api(method: string, path: string, token: string | undefined, body?: unknown): Promise<{ status: number; text: string }> {
    const url = new URL(fleet.apiUrl());
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}) };
      const req = httpsRequest({ host: url.hostname, port: url.port, path, method, rejectUnauthorized: false, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => { text += d; }).on('end', () => { resolve({ status: res.statusCode ?? 0, text }); });
      });
      req.on('error', reject);
      req.end(body !== undefined ? JSON.stringify(body) : undefined);
    });
  }

  beforeAll(async () => {
    fleet = await startFleet({ storageNodes: 2, hosts: 1 });
    for (const a of await fleet.startNodeAgents()) agents.set(a.node.name, a);
    for (const [i, n] of fleet.lab.storageNodes.entries()) {
      const uri = `tgt://${n.portal}?backing=${encodeURIComponent(`dir://${n.dataDir}/luns`)}&control=${String(n.tgtdControlPort)}`;
      await fleet.lab.runInNode(n, ['mkdir', '-p', join(n.dataDir, 'luns')]);
      await fleet.cliJson(['backend', 'create', `${n.name}b`, '--node', n.name, '--driver', uri, '--cost', String(i + 1)]);
      backendId.set(n.name, (await backend(`${n.name}b`)).id);
    }
    const h1 = fleet.lab.host('h1');
    await fleet.cliJson(['host', 'create', 'h1', '--initiator-name', h1.initiatorName, '--address', h1.address]);
  }, 300_000);

  afterAll(async () => {
    await fleet.stop();
  });

  it('a node partitioned mid-create: unreachable, its backends offline, the create waits with a reason; sn2 goes on; healed, it finishes once', async () => {
    // Something on sn2 to delete while sn1 is away.
    await fleet.cliJson(['volume', 'create', 'keep2', '--size', '16M', '--backend', 'sn2b']);
    await fleet.lab.partition('sn1');
    let healed = false;
    try {
      const t0 = Date.now();
      const created = await fleet.cliJson<Created>(['volume', 'create', 'p1', '--size', '16M', '--backend', 'sn1b', '--no-wait']);
      const toUnreachable = await until('sn1 unreachable', async () => (await node('sn1')).state === 'unreachable');
      console.log(`[faults] sn1 unreachable ${((Date.now() - t0) / 1000).toFixed(1)} s after the partition (polled ${toUnreachable.toFixed(1)} s)`);
      expect((await backend('sn1b')).state).toBe('offline');
      const waiting = await until('the create waits with a reason', async () => {
        const op = await operation(created.operation.id);
        expect(op.state).not.toBe('failed');
        return op.waitingReason !== null;
      });
      const op = await operation(created.operation.id);
      console.log(`[faults] create waiting after ${((Date.now() - t0) / 1000).toFixed(1)} s (+${waiting.toFixed(1)} s after unreachable): ${String(op.waitingReason)}`);
      expect(op.waitingReason).toMatch(/^waiting for node sn1/);

      // sn2 is untouched: a create and a delete finish; an untargeted volume avoids sn1.
      const t1 = Date.now();
      await fleet.cliJson(['volume', 'create', 'on2', '--size', '16M', '--backend', 'sn2b']);
      await fleet.cli(['volume', 'delete', 'keep2', '--yes']).then((r) => { expect(r.code, r.stderr).toBe(0); });
      const free = await fleet.cliJson<VolumeJson>(['volume', 'create', 'anywhere', '--size', '16M']);
      console.log(`[faults] create + delete + untargeted create beside the outage took ${((Date.now() - t1) / 1000).toFixed(1)} s`);
      const placed = (await fleet.cliJson<(BackendJson & { id: string })[]>(['backend', 'list'])).find((b) => b.id === free.backendId);
      console.log(`[faults] untargeted volume placed on ${String(placed?.name)} (sn1b offline)`);
      expect(free.backendId).not.toBe(backendId.get('sn1'));

      await fleet.lab.heal('sn1');
      healed = true;
      const t2 = Date.now();
      const states = new Set<string>();
      await until('sn1 ready', async () => { const s = (await node('sn1')).state; states.add(s); return s === 'ready'; });
      await until('the waiting create done', async () => (await operation(created.operation.id)).state === 'succeeded');
      console.log(`[faults] healed: node states seen ${[...states].join(' → ')}; create done ${((Date.now() - t2) / 1000).toFixed(1)} s after heal`);
      expect((await volume('p1')).state).toBe('available');
      expect((await lunFiles('sn1')).filter((f) => f.includes(created.volume.id))).toHaveLength(1);
    } finally {
      if (!healed) await fleet.lab.heal('sn1');
    }
  }, 300_000);

  it('kill -9 of a node agent: unreachable, then restarted with its kept key: a new epoch, a full sync, ready; its exports right', async () => {
    const grant = await fleet.cli(['volume', 'grant', 'on2', '--host', 'h1']);
    expect(grant.code, grant.stderr).toBe(0);
    const before = await node('sn2');
    const accessBefore = await accessOn('sn2');
    console.log(`[faults] sn2 access before the kill:\n${accessBefore}`);
    // An orphan under our naming scheme (a create that crashed before it was journaled) and a foreign file.
    const orphanId = 'vol-orphanorphanorphan23';
    const dir = join(fleet.lab.storageNode('sn2').dataDir, 'luns');
    const ours = (await lunFiles('sn2'))[0] ?? '';
    const orphanName = ours.replace(/vol-[a-z2-7]{20}/, orphanId);
    console.log(`[faults] our LUN file: ${ours}; orphan planted as ${orphanName}`);
    await fleet.lab.runInNode('sn2', ['truncate', '-s', String(MiB), join(dir, orphanName)]);
    await fleet.lab.runInNode('sn2', ['truncate', '-s', String(MiB), join(dir, 'someone-elses.img')]);

    const agent = agents.get('sn2');
    if (!agent) throw new Error('no sn2 agent');
    const t0 = Date.now();
    await fleet.killNodeAgent(agent);
    await until('sn2 unreachable', async () => (await node('sn2')).state === 'unreachable');
    console.log(`[faults] sn2 unreachable ${((Date.now() - t0) / 1000).toFixed(1)} s after kill -9`);
    const next = await fleet.restartNodeAgent(agent);
    agents.set('sn2', next);
    const after = await node('sn2');
    console.log(`[faults] sn2 back: epoch ${String(before.epoch)} → ${String(after.epoch)}, ${((Date.now() - t0) / 1000).toFixed(1)} s after the kill`);
    expect(after.state).toBe('ready');
    expect(after.epoch).toBeGreaterThan(before.epoch);
    const files = await lunFiles('sn2');
    console.log(`[faults] sn2 LUN dir after the sync: ${files.join(', ')}`);
    expect(files).not.toContain(orphanName);
    expect(files).toContain('someone-elses.img');
    const accessAfter = await accessOn('sn2');
    console.log(`[faults] sn2 access after the restart's sync:\n${accessAfter}`);
    expect(accessAfter).toBe(accessBefore);
    expect(accessAfter).toContain(fleet.lab.host('h1').address);
  }, 300_000);

  it('a tgtd restart on a node is healed by its export watch while the node stays ready', async () => {
    const grant = await fleet.cli(['volume', 'grant', 'p1', '--host', 'h1']);
    expect(grant.code, grant.stderr).toBe(0);
    console.log(`[faults] sn1 access before the tgtd restart:\n${await accessOn('sn1')}`);
    const states = new Set<string>();
    await fleet.lab.restartTgtd('sn1');
    const t0 = Date.now();
    const took = await until('sn1 exports back', async () => {
      states.add((await node('sn1')).state);
      const r = await fleet.lab.nodeTgtadm('sn1', ['--op', 'show', '--mode', 'target'], { okExitCodes: [0, 22, 107] });
      return r.stdout.includes(fleet.lab.host('h1').address);
    }, 60_000);
    console.log(`[faults] tgtd restart healed in ${took.toFixed(1)} s (${((Date.now() - t0) / 1000).toFixed(1)}); node states seen: ${[...states].join(', ')}`);
    expect([...states]).toEqual(['ready']);
  }, 120_000);

  it('forged calls are refused: no client certificate, another node\'s key, a reused enrollment token', async () => {
    const sn1 = fleet.lab.storageNode('sn1');
    const fingerprintBefore = (await node('sn1')).keyFingerprint;
    const sn2 = fleet.lab.storageNode('sn2');
    const other = loadIdentity(join(sn2.stateDir, 'identity'));
    if (!other) throw new Error('sn2 kept no identity');
    const health = (tls: { key?: string; cert?: string }): Promise<string> => new Promise((resolve) => {
      const req = httpsRequest({ host: sn1.address, port: NODE_PORT, path: '/v1/health', method: 'GET', rejectUnauthorized: false, timeout: 10_000, ...tls }, (res) => {
        res.resume();
        resolve(`HTTP ${String(res.statusCode)}`);
      });
      req.on('timeout', () => { req.destroy(new Error('timeout')); });
      req.on('error', (err) => { resolve(`refused: ${err.message}`); });
      req.end();
    });
    const noCert = await health({});
    const wrongKey = await health({ key: other.keyPem, cert: other.certPem });
    console.log(`[faults] sn1 port, no client cert: ${noCert}; with sn2's key: ${wrongKey}`);
    expect(noCert).toMatch(/^refused|HTTP 40[13]/);
    expect(wrongKey).toMatch(/^refused|HTTP 40[13]/);

    const token = readFileSync(join(sn1.stateDir, 'enroll-token'), 'utf8').trim();
    const reused = await api('POST', '/v1/nodes/sn1/enroll', undefined, { token, certPem: other.certPem });
    console.log(`[faults] reused node enrollment token: HTTP ${String(reused.status)} ${reused.text.slice(0, 160)}`);
    expect(reused.status).toBe(401);
    expect(reused.text).toMatch(/ENROLLMENT_INVALID/);
    expect((await node('sn1')).keyFingerprint).toBe(fingerprintBefore);
    // Nothing changed: sn1 still serves with the key it enrolled with.
    expect((await node('sn1')).state).toBe('ready');
  }, 120_000);

  it('forged agent calls are refused: a reused agent token, an agent credential on an admin route and on another host\'s grant', async () => {
    const admin = (JSON.parse(readFileSync(fleet.server.cliConfigPath, 'utf8')) as { token?: string }).token;
    if (admin === undefined) throw new Error('no admin token in the fleet CLI config');
    // A second host with a grant of its own, whose CHAP secret h1's agent must not read.
    await fleet.cliJson(['host', 'create', 'h2', '--initiator-name', 'iqn.2024-01.lab.stowage.client:faults-h2', '--address', '10.99.0.250']);
    await fleet.cliJson(['volume', 'create', 'for2', '--size', '16M', '--backend', 'sn2b']);
    const g2 = await fleet.cli(['volume', 'grant', 'for2', '--host', 'h2']);
    expect(g2.code, g2.stderr).toBe(0);
    const issued = await api('POST', '/v1/hosts/h1/enroll-token', admin, {});
    expect(issued.status, issued.text.slice(0, 200)).toBe(200);
    const agentToken = (JSON.parse(issued.text) as { token: string }).token;
    const exchanged = await api('POST', '/v1/hosts/h1/agent-credential', undefined, { token: agentToken });
    expect(exchanged.status).toBe(200);
    const credential = (JSON.parse(exchanged.text) as { credential: string }).credential;
    const again = await api('POST', '/v1/hosts/h1/agent-credential', undefined, { token: agentToken });
    const onAdmin = await api('GET', '/v1/backends', credential);
    const otherGrant = await api('GET', '/v1/volumes/for2/grants/h2/connection', credential);
    const ownGrant = await api('GET', '/v1/volumes/on2/grants/h1/connection', credential);
    const deleteTry = await api('DELETE', '/v1/volumes/for2', credential);
    console.log(`[faults] reused agent token: ${String(again.status)}; agent credential on GET /v1/backends: ${String(onAdmin.status)}; on h2's grant connection: ${String(otherGrant.status)}; on its own: ${String(ownGrant.status)}; DELETE volume: ${String(deleteTry.status)}`);
    expect(again.status).toBe(401);
    expect(again.text).toMatch(/ENROLLMENT_INVALID/);
    expect(onAdmin.status).toBe(403);
    expect(otherGrant.status).toBe(403);
    expect(otherGrant.text).not.toMatch(/secret/i);
    expect(ownGrant.status).toBe(200);
    expect(deleteTry.status).toBe(403);
    expect((await volume('for2')).state).toBe('available');
  }, 120_000);
});
