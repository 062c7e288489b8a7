import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpawnCommandRunner } from '../../src/system/command-runner.js';
import { listensOn } from '../helpers/server.js';
import { startFleet, type Fleet } from './fleet.js';
import { isProcessAlive, type LabState } from './state.js';

/**
 * The fleet fixture itself: a control plane in the root namespace on the bridge address, the
 * built CLI against it, and a node agent (`stowage node run`) enrolled and running in every storage node.
 */

const runner = new SpawnCommandRunner();
const ANY_EXIT = Array.from({ length: 256 }, (_, i) => i);

describe('fleet fixture: lab + control plane on the bridge + CLI', () => {
  let fleet: Fleet;

  beforeAll(async () => {
    fleet = await startFleet({ storageNodes: 2, hosts: 2 });
  }, 180_000);

  afterAll(async () => {
    await fleet.stop(); // idempotent
  });

  it('runs the control plane in the root namespace, listening on the bridge address', async () => {
    const { lab, server } = fleet;
    expect(server.listen.startsWith(`${lab.bridgeAddress}:`)).toBe(true);
    expect(listensOn(server.pid, server.listen.split(':')[1] ?? '')).toBe(true);
    expect(readlinkSync(`/proc/${String(server.pid)}/ns/net`)).toBe(readlinkSync('/proc/self/ns/net'));
    // Hosts and storage nodes reach it over the bridge.
    for (const ns of [lab.host('h1').netns, lab.storageNode('sn1').netns]) {
      const r = await runner.run('ip', ['netns', 'exec', ns, 'socat', '-u', 'OPEN:/dev/null', `TCP:${server.listen},connect-timeout=5`], { okExitCodes: ANY_EXIT, timeoutMs: 30_000 });
      expect(r.exitCode).toBe(0);
    }
    expect(new URL(fleet.apiUrl()).host).toBe(server.listen);
  });

  it('runs the built CLI against it', async () => {
    const backends = await fleet.cliJson<unknown>(['backend', 'list']);
    expect(backends).toBeDefined();
    const bad = await fleet.cli(['backend', 'show', 'no-such-backend']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('BACKEND_NOT_FOUND');
  });

  it('enrolls and starts `stowage node run` in every storage node', async () => {
    const agents = await fleet.startNodeAgents();
    expect(agents.map((a) => a.node.name)).toEqual(['sn1', 'sn2']);
    for (const a of agents) expect(isProcessAlive(a.pid)).toBe(true);
    const state = JSON.parse(readFileSync(fleet.lab.stateFile, 'utf8')) as LabState;
    for (const a of agents) expect(state.processes.map((p) => p.pid)).toContain(a.pid);
    // The enrollment token went through a 0600 file, never argv.
    const argv = readFileSync(`/proc/${String(agents[0]?.pid ?? 0)}/cmdline`, 'utf8');
    expect(argv).not.toMatch(/stw1\.node\./);
    // kill -9 and a start without any token: the node comes back with the key it kept.
    const first = agents[0];
    if (first === undefined) throw new Error('no agent');
    const again = await fleet.restartNodeAgent(first);
    expect(isProcessAlive(first.pid)).toBe(false);
    expect(readFileSync(`/proc/${String(again.pid)}/cmdline`, 'utf8')).not.toContain('--enroll');
  }, 180_000);

  it('tears down the control plane with the lab', async () => {
    const { server, lab } = fleet;
    await fleet.stop();
    expect(isProcessAlive(server.pid)).toBe(false);
    expect(existsSync(lab.runDir)).toBe(false);
    expect(existsSync(lab.stateFile)).toBe(false);
  });
});
