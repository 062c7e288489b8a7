import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import {
  clientFor, ensureBuilt, killAllSpawned, makeTempDir, pollUntil, reachedFailpoints, removeTempDir, spawnServer, type ExitStatus, type SpawnedServer,
} from '../helpers/server.js';

const MiB = 1024 ** 2;
const DRAIN_MS = 6000;
const STEP_PAUSE = 'volume.create/provision:after';
const SWEEP_HOLD = 'loop/claim-sweep:pass';

interface Submitted { volume: Volume; operation: Operation }

const dirs: string[] = [];

/** Sends one SIGTERM (a second one would kill the process outright) and waits; kill -9 only after `graceMs`. */
async function terminate(s: SpawnedServer, graceMs: number): Promise<ExitStatus> {
  process.kill(s.pid, 'SIGTERM');
  const timer = setTimeout(() => { void s.kill9(); }, graceMs);
  try {
    return await s.exited;
  } finally {
    clearTimeout(timer);
  }
}

function count(names: readonly string[], name: string): number {
  return names.filter((n) => n === name).length;
}

describe('stowage serve on SIGTERM', () => {
  beforeAll(async () => {
    await ensureBuilt();
  });
  afterEach(async () => {
    await killAllSpawned();
    for (const d of dirs.splice(0)) removeTempDir(d);
  });

  it('awaits a background pass in flight before it closes the store, and exits 0', async () => {
    const dataDir = makeTempDir('stowage-shutdown-');
    dirs.push(dataDir);
    // The claim sweep runs every ~200 ms and each pass holds 3 s before it reads the store, so a pass
    // is almost always mid-flight; nothing else is running, so only that pass can delay the close.
    const s1 = await spawnServer({
      dataDir,
      failpoints: `${SWEEP_HOLD}=sleep:3000`,
      env: { STOWAGE_RECONCILE_INTERVAL_MS: '200', STOWAGE_SHUTDOWN_DRAIN_MS: String(DRAIN_MS), STOWAGE_LOG_LEVEL: 'info' },
    });
    // Signal only while a sweep pass is holding (entered, not yet woken), so the drain has a pass to await.
    await pollUntil('a claim sweep pass in flight', () => {
      const r = reachedFailpoints(dataDir);
      return Promise.resolve(count(r, SWEEP_HOLD) > count(r, `${SWEEP_HOLD}:woke`) ? true : undefined);
    }, 60_000, 20);
    const sentAt = Date.now();
    const status = await terminate(s1, DRAIN_MS + 20_000);
    console.log(`SIGTERM to exit with a sweep in flight: ${String(Date.now() - sentAt)} ms`);
    const log = s1.output();
    expect(status, log).toEqual({ code: 0, signal: null });

    // The pass in flight woke and read the store before the exit (a process that closed the store and
    // exited at once would leave it un-woken), no pass failed on a closed store, and the log says so.
    const reached = reachedFailpoints(dataDir);
    expect(count(reached, `${SWEEP_HOLD}:woke`), reached.join('\n')).toBe(count(reached, SWEEP_HOLD));
    expect(log).not.toMatch(/background pass failed|not open|closed database|has already been destroyed|did not end before the store/i);
    const stopped = log.split('\n').filter((l) => l.includes('stopped; the store is closed')).map((l) => JSON.parse(l) as { awaited: string[] });
    expect(stopped).toHaveLength(1);
    expect(stopped[0]?.awaited).toContain('claim-sweep');
    // A clean close of the last SQLite connection checkpoints and removes the write-ahead log.
    expect(existsSync(join(dataDir, 'stowage.db-wal'))).toBe(false);
  }, 120_000);

  it('stops taking requests, drains a running operation step up to the deadline, closes the store, exits 0; the operation resumes after a restart', async () => {
    const dataDir = makeTempDir('stowage-shutdown-');
    dirs.push(dataDir);
    // The volume create pauses forever after its first step: only the drain deadline ends the wait.
    const s1 = await spawnServer({ dataDir, failpoints: `${STEP_PAUSE}=pause`, env: { STOWAGE_SHUTDOWN_DRAIN_MS: String(DRAIN_MS) } });
    const api1 = clientFor(s1);
    const submitted = await api1.ok<Submitted>('POST', '/v1/volumes', [200, 201, 202], { body: { name: 'slow', sizeBytes: MiB } });
    await pollUntil('the create to pause after its first step', () => Promise.resolve(reachedFailpoints(dataDir).includes(STEP_PAUSE) ? true : undefined));

    const sentAt = Date.now();
    const exiting = terminate(s1, DRAIN_MS + 20_000);
    // The listener closes at once although the paused step keeps the process draining until the deadline.
    await pollUntil('the API to stop accepting connections', async () => {
      try {
        await fetch(`${s1.url}/healthz`, { signal: AbortSignal.timeout(1000) });
        return undefined;
      } catch {
        return true;
      }
    });
    expect(s1.hasExited()).toBe(false);
    const status = await exiting;
    console.log(`SIGTERM to exit with a paused step: ${String(Date.now() - sentAt)} ms (drain deadline ${String(DRAIN_MS)} ms, then a 1 s abort grace)`);
    const log = s1.output();
    expect(status, log).toEqual({ code: 0, signal: null });
    expect(log).not.toMatch(/background pass failed|not open|closed database|has already been destroyed/i);
    expect(existsSync(join(dataDir, 'stowage.db-wal'))).toBe(false);

    const s2 = await spawnServer({ dataDir });
    const api2 = clientFor(s2);
    const op = await pollUntil('the operation to finish after the restart', async () => {
      const o = await api2.ok<Operation>('GET', `/v1/operations/${submitted.operation.id}`, 200);
      return o.state === 'succeeded' || o.state === 'failed' ? o : undefined;
    });
    expect(op.state).toBe('succeeded');
    expect(op.stepsDone.map((x) => x.name)).toEqual(['provision', 'activate']);
    expect((await api2.ok<Volume>('GET', `/v1/volumes/${submitted.volume.id}`, 200)).state).toBe('available');
    expect(await s2.stop()).toEqual({ code: 0, signal: null });
  }, 180_000);
});
