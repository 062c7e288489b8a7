import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { expect } from 'vitest';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import type { Database } from '../../src/store/schema.js';
import { openStore } from '../../src/store/store.js';
import { freshPostgresUrl } from '../helpers/pg.js';
import {
  clientFor, failpointsReachedPath, makeTempDir, pollUntil, reachedFailpoints, removeTempDir, spawnServer, type ApiClient, type ApiResponse,
  type SpawnedServer,
} from '../helpers/server.js';
import { cellsOf, planRounds, registeredOperations, type MatrixCell } from './matrix-cells.js';

/** Ids a scenario created while preparing its cell. */
export type Prepared = Readonly<Record<string, string>>;

/** How one operation kind is driven through a cell in a tier's world `W`, and what must hold afterwards. */
export interface Scenario<W> {
  readonly kind: string;
  readonly label: string;
  /** Whether this scenario also runs its kind's compensation cell (at most one scenario per kind should). */
  readonly compensates: boolean;
  /** On a server without failpoints: creates what the operation needs (set up to fail when `failing`). */
  prepare(api: ApiClient, w: W, name: string, failing: boolean): Promise<Prepared>;
  /** On the server that will be killed: submits the operation without waiting (a 202 with the operation). */
  submit(api: ApiClient, w: W, p: Prepared, name: string, failing: boolean): Promise<ApiResponse>;
  /** After the restart: the operation finished as it must; its resource is final and its data right. */
  verify(api: ApiClient, w: W, p: Prepared, op: Operation, failing: boolean): Promise<void>;
}

/** A tier: the kinds one world (dir backends, tgtd, hosts) can drive, and how that world is checked. */
export interface Tier<W> {
  readonly kinds: readonly string[];
  /** More STOWAGE_* variables for every server of the tier. */
  readonly env: Readonly<Record<string, string>>;
  scenarios(stepsOf: (kind: string) => readonly string[]): Scenario<W>[];
  /** Before the first server: starts what it must listen on (the lab bridge agents reach) and names the fixed address; default loopback, any port. */
  listen?(dataDir: string): Promise<{ readonly host: string; readonly port: number }>;
  /** On the first server: backends, hosts, classes the scenarios use. */
  setUp(api: ApiClient, dataDir: string, scratchDir: string): Promise<W>;
  /** While no server runs: makes the compensation cells' operations fail; returns how to undo it. */
  breakBackend?(w: W): () => void;
  /** The tier's own agreement between store and world (files, tgtd), read while the clean server runs. */
  checkWorld(db: Kysely<Database>, w: W): Promise<void>;
  tearDown?(w: W): Promise<void>;
}

/** The generated matrix of one tier: rounds of cells (one failpoint per kind per round) and its scenarios. */
export interface Matrix<W> {
  readonly tier: Tier<W>;
  readonly rounds: readonly (readonly MatrixCell[])[];
  readonly scenarios: readonly Scenario<W>[];
  readonly cellCount: number;
}

/** Builds a tier's matrix from the registered kinds: every step × before/done/after, plus compensation where a scenario offers it. */
export async function buildMatrix<W>(tier: Tier<W>): Promise<Matrix<W>> {
  const ops = await registeredOperations();
  const opOf = (kind: string) => {
    const o = ops.find((x) => x.kind === kind);
    if (!o) throw new Error(`${kind} is not registered`);
    return o;
  };
  const scenarios = tier.scenarios((k) => opOf(k).steps);
  const cells = tier.kinds.map((k) => cellsOf(opOf(k), scenarios.some((s) => s.kind === k && s.compensates)));
  return { tier, rounds: planRounds(cells), scenarios, cellCount: cells.flat().length };
}

interface Entry<W> { readonly scenario: Scenario<W>; readonly cell: MatrixCell; readonly name: string; readonly prepared: Prepared; operationId: string }

/** States of volumes, snapshots and grants that an unfinished operation must own. */
const TRANSITIONAL = new Set(['creating', 'resizing', 'reverting', 'deleting', 'granting', 'revoking']);

/**
 * One data dir (and, on PostgreSQL, one database) that every round of a file reuses. Between rounds
 * one server without failpoints verifies the last round and prepares the next, so a round costs two
 * server starts whatever the number of kinds in it.
 */
export class MatrixRun<W> {
  private readonly root = makeTempDir('stowage-matrix-');
  /** The server's data dir (its `local` backend lives in volumes/). */
  readonly dataDir = join(this.root, 'data');
  /** Beside the data dir, for the tier's own backend directories (a backend may not live in the data dir). */
  readonly scratchDir = join(this.root, 'scratch');
  private databaseUrl: string | undefined;
  private server: SpawnedServer | null = null;
  private world: W | null = null;
  private listen: { readonly host: string; readonly port: number } | undefined;

  constructor(private readonly dialect: 'sqlite' | 'postgres', private readonly matrix: Matrix<W>) {}

  private async start(failpoints?: string): Promise<SpawnedServer> {
    // Enough workers that every operation of a round reaches its failpoint at the same time (there is no variable for it).
    const configFile = join(this.dataDir, 'matrix-config.json');
    writeFileSync(configFile, JSON.stringify({ operationConcurrency: 32 }), { mode: 0o600 });
    this.server = await spawnServer({
      dataDir: this.dataDir,
      env: { STOWAGE_CONFIG_FILE: configFile, ...this.matrix.tier.env },
      ...(this.databaseUrl !== undefined ? { databaseUrl: this.databaseUrl } : {}),
      ...(failpoints !== undefined ? { failpoints } : {}),
      ...(this.listen !== undefined ? { listen: this.listen } : {}),
    });
    return this.server;
  }

  async setUp(): Promise<void> {
    mkdirSync(this.dataDir, { mode: 0o700 });
    mkdirSync(this.scratchDir, { mode: 0o700 });
    if (this.dialect === 'postgres') this.databaseUrl = await freshPostgresUrl('matrix');
    this.listen = await this.matrix.tier.listen?.(this.dataDir);
    const s = await this.start();
    this.world = await this.matrix.tier.setUp(clientFor(s), this.dataDir, this.scratchDir);
  }

  async tearDown(): Promise<void> {
    await this.server?.kill9();
    if (this.world !== null) await this.matrix.tier.tearDown?.(this.world);
    removeTempDir(this.root);
  }

  /**
   * Round `r`: prepares its cells on the clean server and stops it; starts one with every cell's
   * failpoint set to pause, submits all operations and waits until each sits at its point; kills
   * that process with -9; restarts it clean; checks every operation, its resource, and the whole
   * store against the world.
   */
  async runRound(r: number): Promise<void> {
    const w = this.world;
    let clean = this.server;
    if (w === null || clean === null) throw new Error('setUp first');
    const cells = this.matrix.rounds[r] ?? [];
    const api = clientFor(clean);
    const entries: Entry<W>[] = [];
    for (const cell of cells) {
      for (const scenario of this.matrix.scenarios.filter((s) => s.kind === cell.kind && (!cell.failing || s.compensates))) {
        const name = `r${String(r)}-${scenario.label.replace(/[^a-z0-9]+/g, '-').replace(/-+$/, '')}`;
        entries.push({ scenario, cell, name, prepared: await scenario.prepare(api, w, name, cell.failing), operationId: '' });
      }
    }
    expect(await clean.stop()).toEqual({ code: 0, signal: null });

    const failing = cells.some((c) => c.failing);
    const repair = failing ? this.matrix.tier.breakBackend?.(w) : undefined;
    rmSync(failpointsReachedPath(this.dataDir), { force: true });
    const doomed = await this.start(cells.map((c) => `${c.failpoint}=pause`).join(','));
    const dApi = clientFor(doomed);
    for (const e of entries) {
      const res = await e.scenario.submit(dApi, w, e.prepared, e.name, e.cell.failing);
      expect(res.status, `${e.name}: ${res.text}`).toBe(202);
      e.operationId = (res.body as { operation: Operation }).operation.id;
    }
    const want = entries.map((e) => e.cell.failpoint).sort();
    await pollUntil(`every operation at its failpoint (${want.join(', ')})`, () => {
      const reached = reachedFailpoints(this.dataDir).sort();
      return Promise.resolve(JSON.stringify(reached) === JSON.stringify(want) ? true : undefined);
    }, 90_000);
    expect(doomed.hasExited(), doomed.output()).toBe(false);
    expect((await doomed.kill9()).signal).toBe('SIGKILL');
    await this.withStore(async (db) => {
      for (const e of entries) {
        const row = await db.selectFrom('operations').select(['state']).where('id', '=', e.operationId).executeTakeFirstOrThrow();
        expect(row.state, `${e.name} at ${e.cell.failpoint}: mid-flight in the journal at the kill`).toBe('running');
      }
    });
    repair?.(); // the operator brings the backend back

    clean = await this.start();
    const cApi = clientFor(clean);
    for (const e of entries) {
      const op = await pollUntil(`${e.name} (${e.cell.failpoint}) to finish after the restart`, async () => {
        const o = await cApi.ok<Operation>('GET', `/v1/operations/${e.operationId}`, 200);
        return o.state === 'succeeded' || o.state === 'failed' ? o : undefined;
      }, 90_000);
      expect(op.attempts, `${e.name}: claimed by the killed server and again after the restart`).toBeGreaterThanOrEqual(2);
      await e.scenario.verify(cApi, w, e.prepared, op, e.cell.failing);
    }
    await this.expectConsistent(w, entries);
  }

  /**
   * Nothing unfinished, no claim held, no resource transitional, no operation's events telling a
   * transition twice, and the tier's world (files, tgtd) agreeing with the store.
   */
  private async expectConsistent(w: W, entries: readonly Entry<W>[]): Promise<void> {
    await this.withStore(async (db) => {
      await expectStoreConsistent(db, entries.map((e) => ({ name: e.name, operationId: e.operationId })));
      await this.matrix.tier.checkWorld(db, w);
    });
  }

  private async withStore(fn: (db: Kysely<Database>) => Promise<void>): Promise<void> {
    const store = await openStore(this.databaseUrl ?? `sqlite://${join(this.dataDir, 'stowage.db')}`);
    try {
      await fn(store.db);
    } finally {
      await store.close();
    }
  }
}

/**
 * The store-side invariants every kill -9 case ends on: no operation queued or running, no claim
 * held, no volume, snapshot or grant transitional, and no operation's events telling a transition twice.
 */
export async function expectStoreConsistent(db: Kysely<Database>, ops: readonly { readonly name: string; readonly operationId: string }[]): Promise<void> {
  expect(await db.selectFrom('operations').select(['id', 'kind', 'state']).where('state', 'in', ['queued', 'running']).execute(), 'unfinished operations').toEqual([]);
  expect(await db.selectFrom('claims').select(['resource_id', 'state']).where('state', '=', 'held').execute(), 'claims held').toEqual([]);
  for (const table of ['volumes', 'snapshots', 'grants'] as const) {
    const rows = await db.selectFrom(table).select(['id', 'state']).execute();
    for (const x of rows) expect(TRANSITIONAL.has(x.state), `${table} ${x.id} is ${x.state}`).toBe(false);
  }
  for (const e of ops) {
    const events = await db.selectFrom('events').select(['action', 'from_state', 'to_state', 'resource_id']).where('operation_id', '=', e.operationId).orderBy('seq').execute();
    const told = events.map((x) => `${x.resource_id}:${x.action}:${x.from_state ?? ''}>${x.to_state ?? ''}`);
    expect(told, `${e.name}: a transition told twice`).toEqual([...new Set(told)]);
  }
}
