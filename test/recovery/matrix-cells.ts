import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DriverCache } from '../../src/backends/driver-cache.js';
import { DriverRegistry } from '../../src/drivers/sdk/registry.js';
import { operationHandlers } from '../../src/operation-handlers.js';
import { DRIVER_FACTORIES } from '../../src/server.js';
import { createRepositories } from '../../src/store/repositories.js';
import { openStore } from '../../src/store/store.js';
import { SpawnCommandRunner } from '../../src/system/command-runner.js';
import { SecretBox } from '../../src/system/secret-box.js';

/** One registered operation kind and its steps, in order, as the server runs them. */
export interface RegisteredOperation {
  readonly kind: string;
  readonly steps: readonly string[];
}

/** Where in a step the server is killed: before it runs, after its effect but before the journal says so, after the journal does. */
export const POSITIONS = ['before', 'done', 'after'] as const;

/** One cell of the matrix: a failpoint of one kind where the server is killed with -9. */
export interface MatrixCell {
  readonly kind: string;
  /** `<kind>/<step>:<position>`, or `<kind>/compensate:before` for a crash during compensation. */
  readonly failpoint: string;
  /** True for the compensation cell: the operation is made to fail (its backend gone) before the crash. */
  readonly failing: boolean;
}

/**
 * The kinds and steps the server registers, read from the very list `startServer` registers
 * (src/operation-handlers.ts) — built on a throwaway store, so nothing here is a copy that can drift.
 */
export async function registeredOperations(): Promise<RegisteredOperation[]> {
  const dir = mkdtempSync(join(tmpdir(), 'stowage-registry-'));
  const store = await openStore(`sqlite://${join(dir, 'stowage.db')}`);
  try {
    const runner = new SpawnCommandRunner();
    const handlers = operationHandlers({
      store, repos: createRepositories(), runner, placementAttempts: 1,
      drivers: new DriverCache(new DriverRegistry(DRIVER_FACTORIES), { runner, dataDir: dir }),
      secrets: SecretBox.fromKeyFile(join(dir, 'secret.key')),
      timings: { connectTimeoutMs: 1, disconnectTimeoutMs: 1, hostDownAfterMs: 1 },
      migrations: () => { throw new Error('not used while listing kinds'); },
    });
    return handlers.map((h) => ({ kind: h.kind, steps: h.steps.map((s) => s.name) }));
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every cell of one kind: each step before/done/after, then (when the kind can be made to fail) its compensation. */
export function cellsOf(op: RegisteredOperation, withCompensation: boolean): MatrixCell[] {
  const cells: MatrixCell[] = op.steps.flatMap((step) => POSITIONS.map((p) => ({ kind: op.kind, failpoint: `${op.kind}/${step}:${p}`, failing: false })));
  if (withCompensation) cells.push({ kind: op.kind, failpoint: `${op.kind}/compensate:before`, failing: true });
  return cells;
}

/**
 * Groups cells into rounds: round r kills every kind at its r-th cell at once (one failpoint per
 * kind per process, so no two cells of a kind can pause at each other's point).
 */
export function planRounds(cellsByKind: readonly (readonly MatrixCell[])[]): MatrixCell[][] {
  const rounds: MatrixCell[][] = [];
  for (const cells of cellsByKind) cells.forEach((c, i) => { (rounds[i] ??= []).push(c); });
  return rounds;
}
