import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { pino } from 'pino';
import { expect } from 'vitest';
import { loadConfig, type Config } from '../../src/config/config.js';
import { StowageError } from '../../src/core/errors.js';
import { DEFAULT_TENANT_ID } from '../../src/core/ids.js';
import type { Backend, CreateBackendInput } from '../../src/core/schemas/backend-schema.js';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import { openStore, type Store } from '../../src/store/store.js';
import type { RequestContext } from '../../src/volumes/volume-service.js';
import { composeControlPlane, type ControlPlane } from '../../src/compose.js';

/** 1 MiB. */
export const MiB = 1024 ** 2;

/**
 * One service-tier world: a real SQLite file in a temp data dir, the services as the composition
 * root builds them (no HTTP), and a scratch dir for the test's dir backends (a backend may not live
 * inside the data dir). The engine's workers start on the first `finish`, so a test can submit
 * several operations before any of them runs (e.g. to see a held claim count against the next).
 */
export interface ServiceWorld {
  readonly config: Config;
  readonly store: Store;
  readonly cp: ControlPlane;
  readonly scratchDir: string;
  /** The operator's request context on the default tenant. */
  readonly ctx: RequestContext;
  /** Registers a dir backend on a fresh directory under the scratch dir; returns it with its directory. */
  addDirBackend(name: string, extra?: Partial<CreateBackendInput>): Promise<{ backend: Backend; dir: string }>;
  /** Runs the engine's workers until `op` has finished (succeeded or failed) and returns it. */
  finish(op: Pick<Operation, 'id'>): Promise<Operation>;
  /** Stops the workers (after what they are running) until the next `finish`: what is submitted meanwhile stays queued. */
  holdWorkers(): Promise<void>;
  /** Every row of every table of the store, plus every file under the scratch dir (with its size): what a refused input must leave as it was. */
  world(): Promise<Record<string, unknown[]>>;
  close(): Promise<void>;
}

/** Opens a world; `overrides` tune the config (defaults: silent, a 20 ms poll, 20 ms retries). */
export async function openServiceWorld(overrides: Partial<Config> = {}): Promise<ServiceWorld> {
  // Not helpers/server.ts's makeTempDir: importing it would load startServer, Fastify and every route.
  const dataDir = mkdtempSync(join(tmpdir(), `stowage-svc-${String(process.pid)}-`));
  const scratchDir = mkdtempSync(join(tmpdir(), `stowage-svc-backends-${String(process.pid)}-`));
  const config = loadConfig(undefined, {}, { dataDir, logLevel: 'silent', operationPollMs: 20, retryBaseMs: 20, ...overrides });
  const store = await openStore(config.databaseUrl);
  const cp = await composeControlPlane(config, store, pino({ level: 'silent' }));
  await cp.tenants.ensureDefaultTenant();
  let started = false;
  return {
    config, store, cp, scratchDir,
    ctx: { actor: 'test', tenantId: DEFAULT_TENANT_ID },
    addDirBackend: async (name, extra = {}) => {
      const dir = join(scratchDir, name);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const { backend } = await cp.backends.create({ name, driver: `dir://${dir}`, ...extra }, 'test');
      expect(backend.state, `${name}: ${backend.stateReason ?? ''}`).toBe('enabled');
      return { backend, dir };
    },
    finish: async (op) => {
      if (!started) {
        cp.engine.start();
        started = true;
      }
      cp.engine.wake();
      // Generous: the limit only bounds a hung worker, the test asserts what the operation did.
      const done = await cp.engine.waitFor(op.id, 60_000);
      if (done.state !== 'succeeded' && done.state !== 'failed') throw new Error(`operation ${op.id} still ${done.state} after 60 s`);
      return done;
    },
    holdWorkers: async () => {
      await cp.engine.stop();
      started = false;
    },
    world: async () => {
      await cp.backends.sharersReprobed(); // a registration's background reprobe would change rows between two looks
      const tables = await sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`.execute(store.db);
      const out: Record<string, unknown[]> = {};
      for (const { name } of tables.rows) {
        // Whole rows, not just counts: a refused call must not update a row either (a state, a claim).
        const r = await sql<Record<string, unknown>>`SELECT * FROM ${sql.table(name)}`.execute(store.db);
        out[name] = r.rows.map((row) => JSON.stringify(row)).sort();
      }
      out.files = filesUnder(scratchDir);
      return out;
    },
    close: async () => {
      await cp.engine.stop();
      await cp.backends.stopBackground();
      await cp.nodeMonitor.close();
      cp.nodeChannels.closeAll();
      await cp.drivers.closeAll();
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(scratchDir, { recursive: true, force: true });
    },
  };
}

/** Every file under `dir` with its size, sorted (`path:size`). */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const full = join(e.parentPath, e.name);
    out.push(`${full}:${String(statSync(full).size)}`);
  }
  return out.sort();
}

/** Awaits `p`, expecting a StowageError with `code`; returns it for further checks. */
export async function expectCode(p: Promise<unknown>, code: string): Promise<StowageError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err, `expected ${code}`).toBeInstanceOf(StowageError);
  const e = err as StowageError;
  expect(e.code, e.message).toBe(code);
  expect(e.message.length).toBeGreaterThan(10);
  return e;
}

/**
 * Runs each refused call and checks it fails with its code and leaves every table and every backend
 * file exactly as it was.
 */
export async function expectRefusedChangingNothing(w: ServiceWorld, cases: readonly (readonly [string, () => Promise<unknown>])[]): Promise<void> {
  const before = await w.world();
  for (const [code, call] of cases) {
    await expectCode(call(), code);
    expect(await w.world(), `a refused call (${code}) changed something`).toEqual(before);
  }
}

/**
 * Calls `probe` until it returns something other than undefined (as helpers/server.ts's pollUntil,
 * which is not imported here: that module loads startServer, Fastify and every route).
 */
export async function pollUntil<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${String(timeoutMs)} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One page big enough for every list these tests make. */
export const ALL = { limit: 1000 } as const;
