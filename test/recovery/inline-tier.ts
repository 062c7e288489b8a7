import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { expect } from 'vitest';
import { INLINE_KINDS, inlineFailpoint, type InlineKind } from '../../src/operations/inline-kinds.js';
import type { Database } from '../../src/store/schema.js';
import { openStore } from '../../src/store/store.js';
import { freshPostgresUrl } from '../helpers/pg.js';
import {
  clientFor, failpointsReachedPath, makeTempDir, pollUntil, reachedFailpoints, removeTempDir, spawnServer, type ApiClient, type SpawnedServer,
} from '../helpers/server.js';

/** Where an inline record is killed: inside its transaction just before the commit, or right after the commit (before the answer). */
export const INLINE_POSITIONS = ['before', 'after'] as const;

/** One cell of the inline matrix: a kind killed at one of its two record failpoints. */
export interface InlineCell {
  readonly kind: InlineKind;
  readonly position: (typeof INLINE_POSITIONS)[number];
  readonly failpoint: string;
}

/** The request one inline kind is driven with, and how its effect is read from the store. */
interface InlineScenario {
  readonly kind: InlineKind;
  /** Resource type and event action the request journals. */
  readonly resourceType: string;
  readonly action: string;
  /** On a clean server: what must exist before the request (named `name`). */
  prepare(api: ApiClient, name: string, scratchDir: string): Promise<void>;
  /** While no server runs: store changes the API cannot make (a host only the fence operation can fence). */
  prepareStore?(db: Kysely<Database>, name: string): Promise<void>;
  /** The request: method, path, body, and the status it answers when it succeeds. */
  request(name: string, scratchDir: string): { method: string; path: string; body?: unknown; status: number };
  /** Whether the request's change is in the store. */
  applied(db: Kysely<Database>, name: string): Promise<boolean>;
  /** Creates only: the id of the resource named `name` in the store, and the id its answer names. */
  created?: {
    stored(db: Kysely<Database>, name: string): Promise<string | undefined>;
    answered(body: unknown): unknown;
  };
}

const backendRow = (db: Kysely<Database>, name: string) => db.selectFrom('backends').selectAll().where('name', '=', name).executeTakeFirst();
const hostRow = (db: Kysely<Database>, name: string) => db.selectFrom('hosts').selectAll().where('name', '=', name).executeTakeFirst();
const classRow = (db: Kysely<Database>, name: string) => db.selectFrom('classes').selectAll().where('name', '=', name).executeTakeFirst();

function backendDir(scratchDir: string, name: string): string {
  const dir = join(scratchDir, name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

async function makeBackend(api: ApiClient, name: string, scratchDir: string): Promise<void> {
  await api.ok('POST', '/v1/backends', 201, { body: { name, driver: `dir://${backendDir(scratchDir, name)}` } });
}

async function makeHost(api: ApiClient, name: string): Promise<void> {
  await api.ok('POST', '/v1/hosts', 201, { body: { name } });
}

const nodeRow = (db: Kysely<Database>, name: string) => db.selectFrom('nodes').selectAll().where('name', '=', name).executeTakeFirst();

async function makeNode(api: ApiClient, name: string): Promise<void> {
  await api.ok('POST', '/v1/nodes', 201, { body: { name, address: '127.0.0.1' } });
}

const none = (): Promise<void> => Promise.resolve();

/** One scenario per inline kind; a kind missing here fails `inlineMatrix` (and the coverage test). */
const SCENARIOS: readonly InlineScenario[] = [
  {
    kind: 'backend.create', resourceType: 'backend', action: 'create', prepare: none,
    request: (name, scratch) => ({ method: 'POST', path: '/v1/backends', body: { name, driver: `dir://${backendDir(scratch, name)}` }, status: 201 }),
    applied: async (db, name) => (await backendRow(db, name)) !== undefined,
    created: { stored: async (db, name) => (await backendRow(db, name))?.id, answered: (b) => (b as { backend?: { id?: unknown } }).backend?.id },
  },
  {
    kind: 'backend.update', resourceType: 'backend', action: 'update', prepare: makeBackend,
    request: (name) => ({ method: 'PATCH', path: `/v1/backends/${name}`, body: { cost: 7 }, status: 200 }),
    applied: async (db, name) => (await backendRow(db, name))?.cost === 7,
  },
  {
    kind: 'backend.disable', resourceType: 'backend', action: 'disable', prepare: makeBackend,
    request: (name) => ({ method: 'POST', path: `/v1/backends/${name}/disable`, status: 200 }),
    applied: async (db, name) => (await backendRow(db, name))?.admin_state === 'disabled',
  },
  {
    kind: 'backend.enable', resourceType: 'backend', action: 'enable',
    prepare: async (api, name, scratch) => { await makeBackend(api, name, scratch); await api.ok('POST', `/v1/backends/${name}/disable`, 200); },
    request: (name) => ({ method: 'POST', path: `/v1/backends/${name}/enable`, status: 200 }),
    applied: async (db, name) => (await backendRow(db, name))?.admin_state === 'enabled',
  },
  {
    kind: 'backend.delete', resourceType: 'backend', action: 'delete', prepare: makeBackend,
    request: (name) => ({ method: 'DELETE', path: `/v1/backends/${name}`, status: 204 }),
    applied: async (db, name) => (await backendRow(db, name)) === undefined,
  },
  {
    kind: 'host.create', resourceType: 'host', action: 'create', prepare: none,
    request: (name) => ({ method: 'POST', path: '/v1/hosts', body: { name }, status: 201 }),
    applied: async (db, name) => (await hostRow(db, name)) !== undefined,
    created: { stored: async (db, name) => (await hostRow(db, name))?.id, answered: (b) => (b as { id?: unknown }).id },
  },
  {
    kind: 'host.update', resourceType: 'host', action: 'update', prepare: makeHost,
    request: (name) => ({ method: 'PATCH', path: `/v1/hosts/${name}`, body: { zone: 'zone-b' }, status: 200 }),
    applied: async (db, name) => (await hostRow(db, name))?.zone === 'zone-b',
  },
  {
    kind: 'host.delete', resourceType: 'host', action: 'delete', prepare: makeHost,
    request: (name) => ({ method: 'DELETE', path: `/v1/hosts/${name}`, status: 204 }),
    applied: async (db, name) => (await hostRow(db, name)) === undefined,
  },
  {
    kind: 'host.unfence', resourceType: 'host', action: 'unfence', prepare: makeHost,
    // Fencing needs a live agent (the hosts tier kills that); here only the unfence is under test.
    prepareStore: async (db, name) => { await db.updateTable('hosts').set({ state: 'fenced' }).where('name', '=', name).execute(); },
    request: (name) => ({ method: 'POST', path: `/v1/hosts/${name}/unfence`, status: 204 }),
    applied: async (db, name) => (await hostRow(db, name))?.state !== 'fenced',
  },
  {
    kind: 'class.create', resourceType: 'class', action: 'create', prepare: none,
    request: (name) => ({ method: 'POST', path: '/v1/classes', body: { name }, status: 201 }),
    applied: async (db, name) => (await classRow(db, name)) !== undefined,
    created: { stored: async (db, name) => (await classRow(db, name))?.id, answered: (b) => (b as { id?: unknown }).id },
  },
  {
    kind: 'class.update', resourceType: 'class', action: 'update',
    prepare: async (api, name) => { await api.ok('POST', '/v1/classes', 201, { body: { name } }); },
    request: (name) => ({ method: 'PATCH', path: `/v1/classes/${name}`, body: { description: 'changed' }, status: 200 }),
    applied: async (db, name) => (await classRow(db, name))?.description === 'changed',
  },
  {
    kind: 'class.delete', resourceType: 'class', action: 'delete',
    prepare: async (api, name) => { await api.ok('POST', '/v1/classes', 201, { body: { name } }); },
    request: (name) => ({ method: 'DELETE', path: `/v1/classes/${name}`, status: 204 }),
    applied: async (db, name) => (await classRow(db, name)) === undefined,
  },
  {
    kind: 'node.create', resourceType: 'node', action: 'create', prepare: none,
    request: (name) => ({ method: 'POST', path: '/v1/nodes', body: { name, address: '127.0.0.1' }, status: 201 }),
    applied: async (db, name) => (await nodeRow(db, name)) !== undefined,
    created: { stored: async (db, name) => (await nodeRow(db, name))?.id, answered: (b) => (b as { node?: { id?: unknown } }).node?.id },
  },
  {
    kind: 'node.drain', resourceType: 'node', action: 'drain', prepare: makeNode,
    request: (name) => ({ method: 'POST', path: `/v1/nodes/${name}/drain`, status: 200 }),
    applied: async (db, name) => (await nodeRow(db, name))?.admin_state === 'draining',
  },
  {
    kind: 'node.resume', resourceType: 'node', action: 'resume',
    prepare: async (api, name) => { await makeNode(api, name); await api.ok('POST', `/v1/nodes/${name}/drain`, 200); },
    request: (name) => ({ method: 'POST', path: `/v1/nodes/${name}/resume`, status: 200 }),
    applied: async (db, name) => (await nodeRow(db, name))?.admin_state === 'active',
  },
  {
    kind: 'node.rekey', resourceType: 'node', action: 'rekey', prepare: makeNode,
    // The token changes: applied when the stored hash is no longer the one created with the node.
    prepareStore: async (db, name) => { await db.updateTable('nodes').set({ enroll_token_hash: 'before-rekey' }).where('name', '=', name).execute(); },
    request: (name) => ({ method: 'POST', path: `/v1/nodes/${name}/rekey`, body: {}, status: 200 }),
    applied: async (db, name) => (await nodeRow(db, name))?.enroll_token_hash !== 'before-rekey',
  },
  {
    kind: 'node.revoke', resourceType: 'node', action: 'revoke', prepare: makeNode,
    prepareStore: async (db, name) => { await db.updateTable('nodes').set({ enroll_token_hash: 'before-revoke' }).where('name', '=', name).execute(); },
    request: (name) => ({ method: 'POST', path: `/v1/nodes/${name}/revoke`, status: 200 }),
    applied: async (db, name) => (await nodeRow(db, name))?.enroll_token_hash === null,
  },
  {
    kind: 'node.delete', resourceType: 'node', action: 'delete', prepare: makeNode,
    request: (name) => ({ method: 'DELETE', path: `/v1/nodes/${name}`, status: 204 }),
    applied: async (db, name) => (await nodeRow(db, name)) === undefined,
  },
];

/** Kinds that have a scenario here (the coverage test compares them with INLINE_KINDS). */
export const INLINE_TIER_KINDS: readonly string[] = SCENARIOS.map((s) => s.kind);

/** Every cell: each inline kind of INLINE_KINDS killed before and after its commit. */
export function inlineCells(): InlineCell[] {
  return INLINE_KINDS.flatMap((kind) => INLINE_POSITIONS.map((position) => ({ kind, position, failpoint: inlineFailpoint(kind, position) })));
}

/**
 * Runs inline cells one server at a time: a paused `:before` cell holds its transaction open (on
 * SQLite, the write lock), so no two cells share a killed process. Each cell: prepare on the clean
 * server, stop it, start one with the cell's failpoint paused, send the request, kill -9 once it
 * sits there, restart clean and read the store. The request carries an Idempotency-Key, and the
 * client's retry after the restart sends the same key (the retry waits for the dead process's claim
 * on it to expire, then takes it over).
 */
export class InlineRun {
  private readonly root = makeTempDir('stowage-inline-');
  private readonly dataDir = join(this.root, 'data');
  private readonly scratchDir = join(this.root, 'scratch');
  private databaseUrl: string | undefined;
  private server: SpawnedServer | null = null;

  constructor(private readonly dialect: 'sqlite' | 'postgres') {}

  async setUp(): Promise<void> {
    mkdirSync(this.dataDir, { mode: 0o700 });
    mkdirSync(this.scratchDir, { mode: 0o700 });
    if (this.dialect === 'postgres') this.databaseUrl = await freshPostgresUrl('inline');
    this.server = await this.start();
  }

  async tearDown(): Promise<void> {
    await this.server?.kill9();
    removeTempDir(this.root);
  }

  private start(failpoints?: string): Promise<SpawnedServer> {
    return spawnServer({
      dataDir: this.dataDir,
      ...(this.databaseUrl !== undefined ? { databaseUrl: this.databaseUrl } : {}),
      ...(failpoints !== undefined ? { failpoints } : {}),
    });
  }

  async runCell(cell: InlineCell): Promise<void> {
    const scenario = SCENARIOS.find((s) => s.kind === cell.kind);
    if (!scenario) throw new Error(`no inline scenario for ${cell.kind}`);
    let clean = this.server;
    if (clean === null) throw new Error('setUp first');
    const name = `${cell.kind.replace('.', '-')}-${cell.position}`;
    await scenario.prepare(clientFor(clean), name, this.scratchDir);
    expect(await clean.stop()).toEqual({ code: 0, signal: null });
    this.server = null;
    const before = await this.withStore(async (db) => {
      await scenario.prepareStore?.(db, name);
      expect(await scenario.applied(db, name), `${name}: already applied before the request`).toBe(false);
      return this.journalOf(db, scenario, name);
    });

    rmSync(failpointsReachedPath(this.dataDir), { force: true });
    const doomed = await this.start(`${cell.failpoint}=pause`);
    const req = scenario.request(name, this.scratchDir);
    const send = (api: ApiClient) => api.request(req.method, req.path, { headers: { 'idempotency-key': `key-${name}` }, ...(req.body !== undefined ? { body: req.body } : {}) });
    // Never answers: the server is killed while the request sits at the failpoint.
    const pending = send(clientFor(doomed)).catch(() => undefined);
    await pollUntil(`${name} at ${cell.failpoint}`, () => Promise.resolve(reachedFailpoints(this.dataDir).includes(cell.failpoint) ? true : undefined), 60_000);
    expect(doomed.hasExited(), doomed.output()).toBe(false);
    expect((await doomed.kill9()).signal).toBe('SIGKILL');
    await pending;

    clean = await this.start();
    this.server = clean;
    await this.withStore(async (db) => {
      const after = await this.journalOf(db, scenario, name);
      const happened = cell.position === 'after';
      // before: nothing of the request (no change, no operation, no event); after: all of it, once.
      expect(await scenario.applied(db, name), `${name}: the change after a kill ${cell.position} the commit`).toBe(happened);
      expect(after.operations - before.operations, `${name}: ${cell.kind} operations journaled`).toBe(happened ? 1 : 0);
      expect(after.events - before.events, `${name}: ${scenario.action} events told`).toBe(happened ? 1 : 0);
      expect(after.unfinished, `${name}: unfinished operations`).toBe(0);
    });
    if (cell.position === 'before') {
      // The client never got an answer, so it sends the request again: it now completes, once.
      const res = await send(clientFor(clean));
      expect(res.status, `${name}: the retry after the restart: ${res.text}`).toBe(req.status);
      await this.withStore(async (db) => {
        const done = await this.journalOf(db, scenario, name);
        expect(await scenario.applied(db, name), `${name}: applied by the retry`).toBe(true);
        expect(done.operations - before.operations, `${name}: the retry journals one operation`).toBe(1);
        expect(done.events - before.events, `${name}: the retry tells one event`).toBe(1);
      });
    } else if (scenario.created) {
      // The create committed but its answer was lost: the retry with the same key gets the first
      // answer (the resource it created, its status), not NAME_TAKEN, and changes nothing more.
      const { created } = scenario;
      const first = await this.withStore(async (db) => {
        const id = await created.stored(db, name);
        const op = await db.selectFrom('operations').select(['id', 'target_id']).where('kind', '=', cell.kind).where('idempotency_key', '=', `key-${name}`).executeTakeFirst();
        expect(op?.target_id, `${name}: the ${cell.kind} operation carries the request's key`).toBe(id);
        return { id, operationId: op?.id };
      });
      const res = await send(clientFor(clean));
      expect(res.status, `${name}: the retry with the same key: ${res.text}`).toBe(req.status);
      expect(created.answered(res.body), `${name}: the retry answers the resource the first request created`).toBe(first.id);
      if (cell.kind === 'backend.create') expect((res.body as { operation?: { id?: unknown } }).operation?.id, `${name}: and its operation`).toBe(first.operationId);
      await this.withStore(async (db) => {
        const done = await this.journalOf(db, scenario, name);
        expect(done.operations - before.operations, `${name}: the retry journals nothing more`).toBe(1);
        expect(done.events - before.events, `${name}: the retry tells no more events`).toBe(1);
      });
    }
  }

  /** How many operations of the scenario's kind exist, and events of its action for resources named `name`. */
  private async journalOf(db: Kysely<Database>, s: InlineScenario, name: string): Promise<{ operations: number; events: number; unfinished: number }> {
    const events = await db.selectFrom('events').select(['resource_id']).where('resource_type', '=', s.resourceType).where('resource_name', '=', name).where('action', '=', s.action).execute();
    // Every operation of the kind, not only those of `name`'s id: a stray one on any target counts too.
    const ops = await db.selectFrom('operations').select(['id']).where('kind', '=', s.kind).execute();
    const unfinished = await db.selectFrom('operations').select(['id']).where('state', 'in', ['queued', 'running']).execute();
    return { operations: ops.length, events: events.length, unfinished: unfinished.length };
  }

  private async withStore<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    const store = await openStore(this.databaseUrl ?? `sqlite://${join(this.dataDir, 'stowage.db')}`);
    try {
      return await fn(store.db);
    } finally {
      await store.close();
    }
  }
}
