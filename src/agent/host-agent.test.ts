import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentAnswer, AgentReport } from '../core/schemas/attachment-schema.js';
import { silentLogger } from './agent-logger.js';
import { HostAgent, type ControlPlane } from './host-agent.js';
import { VmDirectory } from './vm-directory.js';

/** A VM directory (a real, empty one) whose listing stalls from the second pass on, as a pass stuck in QEMU would. */
class StallingVms extends VmDirectory {
  private calls = 0;
  release: () => void = () => undefined;
  private readonly released = new Promise<void>((resolve) => { this.release = resolve; });

  override async list(): Promise<Map<string, string>> {
    this.calls += 1;
    if (this.calls > 1) await this.released;
    return super.list();
  }
}

/** A control plane that answers at once and keeps every call. */
function recordingControlPlane(heartbeatIntervalMs: number): ControlPlane & { calls: { report: AgentReport; waitMs: number }[] } {
  const calls: { report: AgentReport; waitMs: number }[] = [];
  return {
    calls,
    report(_host, report, _signal, waitMs = 0): Promise<AgentAnswer> {
      calls.push({ report, waitMs });
      return Promise.resolve({ hostState: 'up', heartbeatIntervalMs, desired: [] });
    },
  };
}

const until = async (what: string, ok: () => boolean, timeoutMs = 20_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('HostAgent keep-alive', () => {
  let dir: string | undefined;
  afterEach(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  it('keeps reporting the last report while a pass is stuck, and the pass goes on once it is free', async () => {
    dir = mkdtempSync(join(tmpdir(), 'stw-agent-ka-'));
    const vms = new StallingVms(dir);
    // A short heartbeat only so the keep-alive comes quickly; the logic does not depend on its length.
    const cp = recordingControlPlane(100);
    const agent = new HostAgent({ hostName: 'h1', initiatorName: 'iqn.2026-11.io.stowage.host:h1', addresses: ['10.0.0.1'], vms, connectors: [], controlPlane: cp, logger: silentLogger, heartbeatMs: 100 });
    agent.start();
    try {
      await until('the first report', () => cp.calls.length >= 1);
      const first = cp.calls[0];
      expect(first?.waitMs).toBe(100);
      // The second pass is stuck listing VMs: only keep-alives (no long poll) can reach the control plane now.
      await until('two keep-alive reports', () => cp.calls.length >= 3);
      expect(cp.calls.slice(1).map((c) => c.waitMs)).toEqual(cp.calls.slice(1).map(() => 0));
      for (const c of cp.calls.slice(1)) expect(c.report).toEqual(first?.report);
      vms.release();
      await until('a pass report after the stall', () => cp.calls.some((c, i) => i > 0 && c.waitMs > 0));
    } finally {
      vms.release();
      await agent.stop();
    }
  });
});
