import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import { nowIso } from '../../src/store/json.js';
import type { TlsIdentity } from '../../src/system/tls-identity.js';
import { backendOnNode, closedPort, insertNode, nodeIdentity, startTestNode, worldControlCertPem, type TestNode } from '../nodes/node-kit.js';
import { MiB, openServiceWorld, pollUntil, type ServiceWorld } from './services-kit.js';

/*
 * Operations that need a storage node which does not answer wait for it: requeued with a visible
 * reason and their worker given back, never failed for it; they finish once the node is back. A
 * node that was deleted fails them clearly, and their compensation finds nothing left to undo there.
 * The node is a closed loopback port until a real node server comes up on it.
 */

let w: ServiceWorld;
let key: TlsIdentity;
let node: TestNode | null = null;

beforeEach(async () => {
  // Two workers, fewer than the operations that wait below: they can only all make progress, and
  // the create elsewhere only finish, if a waiting operation holds no worker.
  w = await openServiceWorld({ operationConcurrency: 2 });
  key = await nodeIdentity('sn1');
});

afterEach(async () => {
  await node?.stop();
  node = null;
  await w.close();
});

/** Node sn1 on `port`, trusting the world's node-client identity. */
async function startSn1(port: number): Promise<TestNode> {
  return startTestNode({ name: 'sn1', identity: key, port, controlCertPem: await worldControlCertPem(w) });
}

async function op(id: string): Promise<Operation> {
  return w.cp.operations.get(id, w.ctx.tenantId);
}

/** Runs monitor rounds until the node is synced and ready again. */
async function monitorUntilReady(nodeId: string): Promise<void> {
  await pollUntil('node ready', async () => {
    await w.cp.nodeMonitor.check();
    await w.cp.nodeMonitor.settle();
    const n = await w.cp.repos.nodes.findById(w.store.db, nodeId);
    return n?.state === 'ready' ? n : undefined;
  });
}

/** Marks the node unreachable as the node monitor does after nodeUnreachableAfterMs of silence (node-monitor.test.ts proves that part). */
async function nodeGoesSilent(nodeId: string): Promise<void> {
  await w.cp.repos.nodes.update(w.store.db, nodeId, { state: 'unreachable', unreachable_since: nowIso(), state_reason: 'no answer' });
}

describe('operations waiting for a node', () => {
  it('creates on a dead node wait (queued, reason shown, workers free) while a create elsewhere finishes; they finish once the node is back', async () => {
    const port = await closedPort();
    const row = await insertNode(w, 'sn1', port, key.certPem, 'ready');
    const ssd = await backendOnNode(w, 'ssd1', row.id);
    await w.addDirBackend('local2');
    const submitted: Awaited<ReturnType<typeof w.cp.volumes.create>>[] = [];
    for (const i of [1, 2, 3, 4, 5]) {
      const s = await w.cp.volumes.create({ name: `on-node-${String(i)}`, sizeBytes: MiB, backend: 'ssd1' }, w.ctx);
      submitted.push(s);
    }
    await nodeGoesSilent(row.id);
    w.cp.engine.start();
    const waiting = await pollUntil('every create on the dead node waiting', async () => {
      const ops = await Promise.all(submitted.map((s) => op(s.operation.id)));
      return ops.every((o) => o.waitingReason !== null) ? ops : undefined;
    });
    for (const o of waiting) {
      expect(o.state).not.toBe('failed');
      expect(o.waitingReason).toMatch(/^waiting for node sn1: unreachable since \d\d:\d\d:\d\d$/);
      expect(o.error).toBeNull();
    }

    // Another backend's create goes through the same two workers.
    const elsewhere = await w.cp.volumes.create({ name: 'elsewhere', sizeBytes: MiB, backend: 'local2' }, w.ctx);
    const done = await w.finish(elsewhere.operation);
    expect(done.state, JSON.stringify(done.error)).toBe('succeeded');
    for (const s of submitted) {
      const o = await op(s.operation.id);
      expect(o.state === 'queued' || o.state === 'running', o.state).toBe(true);
      expect((await w.cp.volumes.get(s.resource.id, w.ctx.tenantId)).state).toBe('creating');
    }

    // The node comes up where it was; the monitor syncs it, and every waiting create finishes.
    node = await startSn1(port);
    await monitorUntilReady(row.id);
    for (const s of submitted) {
      const o = await w.finish(s.operation);
      expect(o.state, JSON.stringify(o.error)).toBe('succeeded');
      expect(o.waitingReason).toBeNull();
      const v = await w.cp.volumes.get(s.resource.id, w.ctx.tenantId);
      expect(v.state).toBe('available');
      expect(existsSync(join(ssd.dir, `${s.resource.id}.raw`))).toBe(true);
    }
  });

  it('a create on a node that was deleted fails with NODE_GONE and compensates (nothing left to undo there)', async () => {
    const port = await closedPort();
    const row = await insertNode(w, 'sn1', port, key.certPem, 'ready');
    await backendOnNode(w, 'ssd1', row.id);
    const s = await w.cp.volumes.create({ name: 'doomed', sizeBytes: MiB, backend: 'ssd1' }, w.ctx);
    await w.cp.repos.nodes.delete(w.store.db, row.id);
    const o = await w.finish(s.operation);
    expect(o.state).toBe('failed');
    expect(o.error?.code).toBe('NODE_GONE');
    expect(o.error?.message).toMatch(/was deleted/);
    expect(o.waitingReason).toBeNull();
    const v = await w.cp.volumes.get(s.resource.id, w.ctx.tenantId);
    expect(v.state).toBe('error');
    expect(v.stateReason).toMatch(/^create failed: /);
    expect(v.stateReason).not.toMatch(/could not be removed/);
    const claims = await w.cp.repos.claims.listForResource(w.store.db, s.resource.id);
    expect(claims.every((c) => c.state === 'released')).toBe(true);
  });

  it('a delete on a node that went silent waits with the data still there, and finishes once the node answers', async () => {
    const port = await closedPort();
    const row = await insertNode(w, 'sn1', port, key.certPem, 'ready');
    const ssd = await backendOnNode(w, 'ssd1', row.id);
    node = await startSn1(port);
    const s = await w.cp.volumes.create({ name: 'v', sizeBytes: MiB, backend: 'ssd1' }, w.ctx);
    expect((await w.finish(s.operation)).state).toBe('succeeded');
    await node.stop();
    node = null;
    await nodeGoesSilent(row.id);
    const del = await w.cp.volumes.delete(s.resource.id, w.ctx);
    const waiting = await pollUntil('the delete waits', async () => {
      const o = await op(del.operation.id);
      return o.waitingReason !== null ? o : undefined;
    });
    expect(waiting.state).toBe('queued');
    expect(existsSync(join(ssd.dir, `${s.resource.id}.raw`))).toBe(true);
    node = await startSn1(port);
    await monitorUntilReady(row.id);
    const done = await w.finish(del.operation);
    expect(done.state, JSON.stringify(done.error)).toBe('succeeded');
    expect(existsSync(join(ssd.dir, `${s.resource.id}.raw`))).toBe(false);
  });
});
