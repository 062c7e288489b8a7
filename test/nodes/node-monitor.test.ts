import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { idOf, newId } from '../../src/core/ids.js';
import { NODE_ROUTES } from '../../src/nodes/node-protocol.js';
import { sendJson, type NodeRouteHandler } from '../../src/node/node-server.js';
import type { TlsIdentity } from '../../src/system/tls-identity.js';
import { openServiceWorld, pollUntil, type ServiceWorld } from '../services/services-kit.js';
import { backendOnNode, insertNode, nodeIdentity, startTestNode, worldControlCertPem, type TestNode } from './node-kit.js';

/*
 * The node monitor against real node servers on loopback (mutual TLS, pinned keys), over a real
 * SQLite store. Rounds are run one at a time with `check()` (the server's loop runs the same pass
 * every nodeHeartbeatMs); the unreachable window is the default one (10 s), waited for in real time.
 */

let w: ServiceWorld;
let sn1Key: TlsIdentity;
const nodes: TestNode[] = [];

beforeEach(async () => {
  w = await openServiceWorld({});
  sn1Key = await nodeIdentity('sn1');
});

afterEach(async () => {
  for (const n of nodes.splice(0)) await n.stop();
  await w.close();
});

async function start(port = 0, key = sn1Key, extra: Readonly<Record<string, NodeRouteHandler>> = {}): Promise<TestNode> {
  const n = await startTestNode({ name: 'sn1', identity: key, port, routes: extra, controlCertPem: await worldControlCertPem(w) });
  nodes.push(n);
  return n;
}

/** The node's state moves as `stowage events` tells them: from>to, in order. */
async function moves(id: string): Promise<string[]> {
  const rows = await w.store.db.selectFrom('events').select(['from_state', 'to_state', 'message']).where('resource_id', '=', id).where('resource_type', '=', 'node').orderBy('seq').execute();
  return rows.filter((e) => e.from_state !== e.to_state).map((e) => `${e.from_state ?? ''}>${e.to_state ?? ''}`);
}

async function round(): Promise<void> {
  await w.cp.nodeMonitor.check();
  await w.cp.nodeMonitor.settle();
}

async function nodeRow(id: string) {
  const r = await w.cp.repos.nodes.findById(w.store.db, id);
  if (!r) throw new Error('node row gone');
  return r;
}

describe('node monitor', () => {
  it('a just-enrolled node gets its first epoch, a full sync and is ready, with version, clock skew and the backends on it probed through it', async () => {
    const node = await start();
    const row = await insertNode(w, 'sn1', node.port, sn1Key.certPem, 'syncing');
    const b = await backendOnNode(w, 'ssd1', row.id);
    await round();
    const r = await nodeRow(row.id);
    expect(r.state, r.state_reason ?? '').toBe('ready');
    expect(r.version).toBe('9.9.9-test');
    expect(r.boot_id).toBe(node.server.bootId);
    expect(r.epoch).toBe(1);
    expect(Number.isInteger(r.clock_skew_ms)).toBe(true);
    expect(r.last_heartbeat_at).not.toBeNull();
    expect(r.unreachable_since).toBeNull();
    const backend = await w.cp.backends.get(b.id);
    expect(backend.state, backend.stateReason ?? '').toBe('enabled');
    // A second round of a ready node opens no new epoch.
    await round();
    expect((await nodeRow(row.id)).epoch).toBe(1);
  });

  it('a node that stops answering is unreachable once silent for nodeUnreachableAfterMs, and every backend on it offline saying since when', async () => {
    const node = await start();
    const row = await insertNode(w, 'sn1', node.port, sn1Key.certPem, 'syncing');
    const b = await backendOnNode(w, 'ssd1', row.id);
    await round();
    expect((await nodeRow(row.id)).state).toBe('ready');
    await node.kill();
    nodes.splice(nodes.indexOf(node), 1);
    await round();
    // Silent for less than the window: still ready (one lost heartbeat is not an outage).
    expect((await nodeRow(row.id)).state).toBe('ready');
    const r = await pollUntil('node unreachable', async () => {
      await round();
      const n = await nodeRow(row.id);
      return n.state === 'unreachable' ? n : undefined;
    }, 30_000);
    expect(r.unreachable_since).toBe(r.last_heartbeat_at);
    const backend = await w.cp.backends.get(b.id);
    expect(backend.state).toBe('offline');
    expect(backend.stateReason).toMatch(/^node sn1 unreachable since \d\d:\d\d:\d\d$/);
    // The backend probe says the same, so probe and monitor never flap.
    await w.cp.backends.refresh(b.id);
    expect((await w.cp.backends.get(b.id)).stateReason).toBe(backend.stateReason);
    // Placement says why it avoids it.
    const d = await w.cp.volumes.dryRun({ name: 'v', sizeBytes: 1024 ** 2, backend: 'ssd1' }, w.ctx.tenantId);
    expect(d.verdicts[0]?.passed).toBe(false);
    // Each move is an event, told once however many silent rounds follow.
    await round();
    expect(await moves(row.id)).toEqual(['syncing>ready', 'ready>unreachable']);
  });

  it('a restarted node (new boot id) gets the next epoch and a full sync before it is ready again; calls under the old epoch are refused', async () => {
    const first = await start();
    const row = await insertNode(w, 'sn1', first.port, sn1Key.certPem, 'syncing');
    await backendOnNode(w, 'ssd1', row.id);
    await round();
    expect((await nodeRow(row.id)).epoch).toBe(1);
    await first.kill();
    nodes.splice(nodes.indexOf(first), 1);
    const second = await start(first.port);
    expect(second.server.bootId).not.toBe(first.server.bootId);
    // The first round may still find the kept-alive connection to the old process (reset): one missed beat.
    const r = await pollUntil('node synced after its restart', async () => {
      await round();
      const n = await nodeRow(row.id);
      return n.boot_id === second.server.bootId && n.state === 'ready' ? n : undefined;
    }, 30_000);
    expect(r.epoch).toBe(2);
    expect(r.boot_id).toBe(second.server.bootId);
    expect((await moves(row.id)).slice(-2)).toEqual(['ready>syncing', 'syncing>ready']);
    // The node itself is in epoch 2: a call made under epoch 1 is refused.
    const ch = await w.cp.nodeChannels.channel(row.id, 'call');
    const stale = await ch.client.call({ backend: { id: 'x', name: 'x', uri: 'dir:///nonexistent', options: {} }, target: 'driver', method: 'probe', args: [] }, 1, AbortSignal.timeout(5000))
      .then(() => null, (e: unknown) => e);
    expect(stale).toMatchObject({ code: 'STALE_EPOCH' });
  });

  it('a heartbeat answer from before a new epoch was opened is ignored', async () => {
    let hold: (() => void) | null = null;
    let held: (() => void) | null = null;
    const heldSeen = new Promise<void>((r) => { held = r; });
    const node = await start(0, sn1Key, {
      [NODE_ROUTES.health]: async (_req, res, ctx) => {
        if (hold === null) {
          await new Promise<void>((r) => { hold = r; held?.(); });
        }
        sendJson(res, 200, ctx.state.health());
      },
    });
    const row = await insertNode(w, 'sn1', node.port, sn1Key.certPem, 'ready');
    await w.cp.repos.nodes.update(w.store.db, row.id, { boot_id: node.server.bootId });
    const pass = w.cp.nodeMonitor.check();
    await heldSeen;
    // Meanwhile the node moved on (another replica's sync opened epoch 1 and found it unreachable).
    const epoch = await w.cp.repos.nodes.nextEpoch(w.store.db, row.id);
    await w.cp.repos.nodes.updateInEpoch(w.store.db, row.id, epoch ?? -1, { state: 'unreachable', unreachable_since: row.created_at });
    (hold as unknown as () => void)();
    await pass;
    await w.cp.nodeMonitor.settle();
    const r = await nodeRow(row.id);
    expect(r.state).toBe('unreachable');
    expect(r.last_heartbeat_at).toBeNull();
    expect(r.epoch).toBe(1);
  });

  it('a node that shows another key than the pinned one is auth_failed, its backends offline', async () => {
    const impostor = await nodeIdentity('sn1-other');
    const node = await start(0, impostor);
    const row = await insertNode(w, 'sn1', node.port, sn1Key.certPem, 'ready');
    const b = await backendOnNode(w, 'ssd1', row.id);
    await round();
    const r = await nodeRow(row.id);
    expect(r.state).toBe('auth_failed');
    expect(r.state_reason).toMatch(/certificate/);
    const backend = await w.cp.backends.get(idOf('backend', b.id));
    expect(backend.state).toBe('offline');
    expect(backend.stateReason).toMatch(/^node sn1 auth failed since/);
    // Calls wait for it with the reason.
    const err = await w.cp.nodeChannels.channel(row.id, 'call').then(() => null, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'NODE_UNREACHABLE' });
  });

  it('a full sync removes volumes under our id scheme that the store does not know, and leaves foreign files alone', async () => {
    const node = await start();
    const row = await insertNode(w, 'sn1', node.port, sn1Key.certPem, 'syncing');
    const b = await backendOnNode(w, 'ssd1', row.id);
    const orphan = newId('volume');
    writeFileSync(join(b.dir, `${orphan}.raw`), Buffer.alloc(4096));
    const foreign = join(b.dir, 'not-ours.raw');
    writeFileSync(foreign, 'x');
    await round();
    expect((await nodeRow(row.id)).state).toBe('ready');
    expect(existsSync(join(b.dir, `${orphan}.raw`))).toBe(false);
    expect(existsSync(foreign)).toBe(true);
  });
});
