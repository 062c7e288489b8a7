import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/core/ids.js';
import { NodeClient } from '../../src/nodes/node-client.js';
import { SpawnCommandRunner } from '../../src/system/command-runner.js';
import { openServiceWorld, type ServiceWorld } from '../services/services-kit.js';
import { codeOf, nodeRow, startTestNode, testIdentities, type TestNode } from './node-kit.js';

const runner = new SpawnCommandRunner();
const sig = (): AbortSignal => new AbortController().signal;

/**
 * The control plane as composed: a backend row with a node_id gets a remote driver from the
 * DriverCache, over the store's node row and the control plane's own `node-client` identity.
 */
describe('composed control plane: a backend on a node', () => {
  let w: ServiceWorld;
  let node: TestNode;
  const nodeId = `node-${newId('backend')}`;

  beforeAll(async () => {
    w = await openServiceWorld();
    const identity = await w.cp.identities.get('node-client');
    node = await startTestNode(runner, 'node-cp', identity.certPem);
    const ids = await testIdentities(runner);
    // What the node monitor does on connect: open an epoch, record it and the boot id in the row.
    const client = new NodeClient({ name: node.name, address: `127.0.0.1:${node.server.address.port}`, certPem: ids.node.certPem }, identity);
    const health = await client.openEpoch(3, sig());
    client.close();
    await w.cp.repos.nodes.insert(w.store.db, { ...nodeRow(node, ids.node.certPem, 3), id: nodeId, boot_id: health.bootId });
  });
  afterAll(async () => {
    await node.stop();
    await w.close();
  });

  it('runs the driver on the node, and refuses while the node is not serving or gone', async () => {
    const row = { id: newId('backend'), name: 'on-node', driver_uri: `dir://${w.scratchDir}/on-node`, options: '{}', node_id: nodeId };
    await runner.run('mkdir', ['-p', `${w.scratchDir}/on-node`]);
    const driver = w.cp.drivers.get(row);
    const report = await driver.probe(sig());
    expect(report.capabilities).toContain('snapshot');
    expect(driver.node).toBe('node-cp');
    expect(node.log()).toMatch(/"method":"probe"/);

    await w.cp.repos.nodes.update(w.store.db, nodeId, { state: 'unreachable', state_reason: 'no heartbeat', unreachable_since: new Date().toISOString() });
    expect(await codeOf(driver.probe(sig()))).toBe('NODE_UNREACHABLE');
    await w.cp.repos.nodes.delete(w.store.db, nodeId);
    expect(await codeOf(driver.probe(sig()))).toBe('NODE_GONE');
  });
});
