import type { Logger } from 'pino';
import { nodeDownReasonOf } from '../nodes/node-errors.js';
import { StowageError, toStowageError } from '../core/errors.js';
import { DEFAULT_TENANT_ID, idOf, isId, newId } from '../core/ids.js';
import type { Backend, CreateBackendInput, UpdateBackendInput } from '../core/schemas/backend-schema.js';
import type { PageOf } from '../core/models.js';
import { assertValidName, assertValidTags } from '../core/names.js';
import type { BackendKind, BackendState } from '../core/states.js';
import { CAPABILITIES } from '../core/capabilities.js';
import type { BackendReport } from '../drivers/sdk/types.js';
import type { DriverRegistry } from '../drivers/sdk/registry.js';
import type { OperationEngine } from '../operations/engine.js';
import { backendJson, toBackend, type CapabilityOverrides } from '../store/backend-repository.js';
import { nowIso, readJson, writeJson } from '../store/json.js';
import type { PageRequest } from '../store/keyset-page.js';
import type { BackendRow } from '../store/schema.js';
import type { Executor, Store } from '../store/store.js';
import { assertNoOverlap, filesystemOf, shareOf, type BackendDir } from './backend-paths.js';
import type { DriverCache } from './driver-cache.js';
import { SharerReprobe } from './sharer-reprobe.js';
import { BackendActivity, type BackendActivityView } from '../reconcile/backend-activity.js';
import type { Repositories } from '../store/repositories.js';
import { tenantNames, tenantsColumn } from '../tenants/visibility.js';

const PROBE_TIMEOUT_MS = 15_000;

/** The rules of backends: registration, updates, probes and state, deletion. */
export class BackendService {
  private readonly sharerReprobe: SharerReprobe;
  /**
   * The share of its filesystem each local backend's stored probe result was computed with. A
   * sharer whose count has not changed since is skipped by the background reprobe: its stored
   * figures are already right, and probing it again would only race whatever else is happening
   * to it (the backend just registered is on the filesystem it changed, and its own probe was
   * taken with the new count).
   */
  private readonly probedShare = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly repos: Repositories,
    private readonly registry: DriverRegistry,
    private readonly drivers: DriverCache,
    private readonly engine: OperationEngine,
    private readonly logger: Logger,
    /** This replica's probe and reconcile counters, shown by detail(). */
    readonly activity: BackendActivity = new BackendActivity(),
  ) {
    this.sharerReprobe = new SharerReprobe((filesystems, stopped) => this.reprobeOn(filesystems, stopped), logger);
  }

  /** Resolves once the background reprobe of filesystem sharers requested so far has run. */
  sharersReprobed(): Promise<void> {
    return this.sharerReprobe.settled();
  }

  /** Stops the background reprobe of filesystem sharers (what is pending is dropped) and waits for its pass; the server calls it before closing the store. */
  stopBackground(): Promise<void> {
    return this.sharerReprobe.stop();
  }

  /** Finds a backend by id or name, or throws BACKEND_NOT_FOUND. */
  async resolve(ref: string, db: Executor = this.store.db): Promise<BackendRow> {
    const row = isId('backend', ref) ? await this.repos.backends.findById(db, ref) : await this.repos.backends.findByName(db, ref);
    if (!row) throw new StowageError('BACKEND_NOT_FOUND', `backend "${ref}" does not exist; see \`stowage backend list\``, { backend: ref });
    return row;
  }

  async get(ref: string): Promise<Backend> {
    const row = await this.resolve(ref);
    const usage = await this.repos.backends.usage(this.store.db, [row.id]);
    return { ...toBackend(row, usage.get(row.id), await this.nodeNameOf(row)), tenants: await tenantNames(this.store.db, this.repos, row.tenants) };
  }

  /** The name of the node a backend runs on (null: the control plane). */
  private async nodeNameOf(row: Pick<BackendRow, 'node_id'>): Promise<string | null> {
    if (row.node_id === null) return null;
    return (await this.repos.nodes.findById(this.store.db, row.node_id))?.name ?? null;
  }

  /** One backend with this replica's reconcile and probe counters. */
  async detail(ref: string): Promise<Backend & BackendActivityView> {
    const backend = await this.get(ref);
    return { ...backend, ...this.activity.of(backend.id) };
  }

  /** Whether any backend is registered (the server creates the `local` one on a store with none). */
  async any(): Promise<boolean> {
    return (await this.repos.backends.listAll(this.store.db)).length > 0;
  }

  /** One page of backends by name, each with its usage. */
  async list(page: PageRequest): Promise<PageOf<Backend>> {
    const { rows, nextCursor } = await this.repos.backends.page(this.store.db, page);
    const usage = await this.repos.backends.usage(this.store.db, rows.map((r) => r.id));
    const nodes = rows.some((r) => r.node_id !== null) ? new Map((await this.repos.nodes.listAll(this.store.db)).map((n) => [n.id, n.name])) : new Map<string, string>();
    const items = await Promise.all(rows.map(async (r) => ({ ...toBackend(r, usage.get(r.id), r.node_id === null ? null : nodes.get(r.node_id) ?? null), tenants: await tenantNames(this.store.db, this.repos, r.tenants) })));
    return { items, nextCursor };
  }

  /**
   * Validates, probes once, and records the backend (offline with the reason if the probe fails).
   * With an Idempotency-Key whose backend.create already committed (the process died before it
   * answered), answers that backend and operation instead of NAME_TAKEN: the idempotency layer has
   * already checked that this is the same request.
   */
  async create(input: CreateBackendInput, actor: string, idempotencyKey?: string): Promise<{ backend: Backend; operationId: string }> {
    assertValidName(input.name, 'backend name');
    assertValidTags(input.tags ?? []);
    validateNumbers(input);
    validateOverrides(input.capabilityOverrides);
    if (input.zone) assertValidName(input.zone, 'zone');
    const { factory } = this.registry.factoryFor(input.driver);
    // Stored and shown as the driver uses it: `dir:///srv/a/..%2Fb` is registered as dir:///srv/b.
    const driverUri = this.registry.canonicalUri(input.driver);
    const options = input.options ?? {};
    const localDir = this.drivers.validate(driverUri, options).localDir;
    const first = await this.createdBy(idempotencyKey);
    if (first) return first;
    // Its directory is on that node's machine: it is compared only with the other backends there.
    const nodeId = input.node === undefined ? null : (await this.nodeNamed(input.node)).id;
    const tenants = await tenantsColumn(this.store.db, this.repos, input.tenants ?? null);
    if (await this.repos.backends.findByName(this.store.db, input.name)) {
      throw new StowageError('NAME_TAKEN', `a backend named "${input.name}" already exists`, { name: input.name });
    }
    // Checked before the probe too, which may create the directory (btrfs): refused input changes nothing.
    if (localDir) assertNoOverlap(input.name, localDir, this.backendDirs(onNode(await this.repos.backends.listAll(this.store.db), nodeId)), this.dataDirOn(nodeId));
    const id = newId('backend');
    const at = nowIso();
    const adminState = input.enabled === false ? 'disabled' : 'enabled';
    const row: BackendRow = {
      id, tenant_id: DEFAULT_TENANT_ID, name: input.name, driver_uri: driverUri, kind: factory.kind,
      role: input.role ?? 'primary', state: 'offline', state_reason: 'not probed yet', admin_state: adminState,
      cost: input.cost ?? 0, tags: backendJson.tags(input.tags ?? []), zone: input.zone ?? '',
      overcommit_ratio: input.overcommitRatio ?? 1, reserved_percent: input.reservedPercent ?? 0,
      options: backendJson.options(options), capabilities_reported: '[]', node_id: nodeId, tenants,
      capabilities_overrides: writeJson(input.capabilityOverrides ?? { add: [], remove: [] }),
      total_bytes: 0, free_bytes: 0, used_bytes: 0, last_probe_at: null, created_at: at, updated_at: at,
    };
    const report = await this.probeDriver(row);
    applyReport(row, report);
    const op = await this.store.transaction(async (trx) => {
      if (nodeId !== null && !(await this.repos.nodes.findById(trx, nodeId))) throw new StowageError('NODE_NOT_FOUND', `node "${input.node ?? ''}" was deleted meanwhile`, { node: input.node });
      if (localDir) assertNoOverlap(input.name, localDir, this.backendDirs(onNode(await this.repos.backends.listAll(trx), nodeId)), this.dataDirOn(nodeId));
      try {
        await this.repos.backends.insert(trx, row);
      } catch (err) {
        if ((await this.repos.backends.findByName(trx, input.name).catch(() => undefined))) {
          throw new StowageError('NAME_TAKEN', `a backend named "${input.name}" already exists`, { name: input.name });
        }
        throw err;
      }
      await this.repos.events.append(trx, {
        tenantId: DEFAULT_TENANT_ID, actor, resourceType: 'backend', resourceId: id, resourceName: row.name, action: 'create',
        from: null, to: row.state, message: `backend ${row.name} registered (${row.driver_uri})${row.state_reason ? `: ${row.state_reason}` : ''}`,
      });
      return this.engine.record(trx, { kind: 'backend.create', tenantId: DEFAULT_TENANT_ID, targetType: 'backend', targetId: id, input: { name: row.name }, actor, idempotencyKey: idempotencyKey ?? null }, { backendId: id, state: row.state });
    });
    await this.engine.recorded('backend.create');
    this.rememberShare(id, report);
    if (localDir && nodeId === null) await this.reprobeSharers(localDir); // their share of the filesystem just shrank
    return { backend: await this.get(id), operationId: op.id };
  }

  /** What an earlier backend.create with this key answered, if its backend still exists (backends are journaled under the default tenant). */
  private async createdBy(key: string | undefined): Promise<{ backend: Backend; operationId: string } | undefined> {
    if (key === undefined) return undefined;
    const op = await this.repos.operations.findByIdempotencyKey(this.store.db, DEFAULT_TENANT_ID, key);
    if (op?.kind !== 'backend.create' || op.target_type !== 'backend') return undefined;
    const id = idOf('backend', op.target_id);
    if (!(await this.repos.backends.findById(this.store.db, id))) return undefined;
    return { backend: await this.get(id), operationId: op.id };
  }

  async update(ref: string, patch: UpdateBackendInput, actor: string): Promise<Backend> {
    if (patch.tags) assertValidTags(patch.tags);
    if (patch.zone) assertValidName(patch.zone, 'zone');
    validateNumbers(patch);
    validateOverrides(patch.capabilityOverrides);
    const row = await this.resolve(ref);
    const tenants = patch.tenants === undefined ? undefined : await tenantsColumn(this.store.db, this.repos, patch.tenants);
    await this.store.transaction(async (trx) => {
      await this.repos.backends.update(trx, row.id, {
        ...(tenants !== undefined ? { tenants } : {}),
        ...(patch.role !== undefined ? { role: patch.role } : {}),
        ...(patch.cost !== undefined ? { cost: patch.cost } : {}),
        ...(patch.tags !== undefined ? { tags: backendJson.tags(patch.tags) } : {}),
        ...(patch.zone !== undefined ? { zone: patch.zone } : {}),
        ...(patch.overcommitRatio !== undefined ? { overcommit_ratio: patch.overcommitRatio } : {}),
        ...(patch.reservedPercent !== undefined ? { reserved_percent: patch.reservedPercent } : {}),
        ...(patch.capabilityOverrides !== undefined ? { capabilities_overrides: writeJson(patch.capabilityOverrides) } : {}),
        updated_at: nowIso(),
      });
      await this.repos.events.append(trx, {
        tenantId: row.tenant_id, actor, resourceType: 'backend', resourceId: row.id, resourceName: row.name, action: 'update',
        from: row.state, to: row.state, message: `backend ${row.name} updated: ${Object.keys(patch).join(', ')}`, details: { changed: Object.keys(patch) },
      });
      await this.engine.record(trx, { kind: 'backend.update', tenantId: row.tenant_id, targetType: 'backend', targetId: row.id, input: { ...patch }, actor }, {});
    });
    await this.engine.recorded('backend.update');
    return this.get(row.id);
  }

  /** Sets the administrative state; a disabled backend keeps its volumes but takes no new ones. */
  async setEnabled(ref: string, enabled: boolean, actor: string): Promise<Backend> {
    const row = await this.resolve(ref);
    const adminState = enabled ? 'enabled' : 'disabled';
    await this.store.transaction(async (trx) => {
      const state: BackendState = enabled ? (row.state === 'disabled' ? 'offline' : row.state) : 'disabled';
      await this.repos.backends.update(trx, row.id, { admin_state: adminState, state, state_reason: enabled ? 'waiting for the next probe' : 'disabled by an operator', updated_at: nowIso() });
      await this.repos.events.append(trx, {
        tenantId: row.tenant_id, actor, resourceType: 'backend', resourceId: row.id, resourceName: row.name, action: enabled ? 'enable' : 'disable',
        from: row.state, to: state, message: `backend ${row.name} ${adminState}`,
      });
      await this.engine.record(trx, { kind: enabled ? 'backend.enable' : 'backend.disable', tenantId: row.tenant_id, targetType: 'backend', targetId: row.id, input: {}, actor }, {});
    });
    await this.engine.recorded(enabled ? 'backend.enable' : 'backend.disable');
    if (enabled) await this.refresh(row.id, actor);
    return this.get(row.id);
  }

  /** Refuses while the backend holds volumes (409 with the count); otherwise removes it. */
  async delete(ref: string, actor: string): Promise<void> {
    const row = await this.resolve(ref);
    let localDir: string | undefined;
    try {
      localDir = this.drivers.get(row).localDir;
    } catch {
      localDir = undefined; // a row whose URI no longer parses shares nothing we can find
    }
    await this.store.transaction(async (trx) => {
      const n = await this.repos.backends.countVolumes(trx, row.id);
      if (n > 0) {
        throw new StowageError('BACKEND_IN_USE', `backend ${row.name} still holds ${n} volume${n === 1 ? '' : 's'}; delete or move them first`, { backend: row.name, volumeCount: n });
      }
      await this.repos.volumes.releaseDeletedFromBackend(trx, row.id);
      await this.repos.backends.delete(trx, row.id);
      await this.repos.events.append(trx, {
        tenantId: row.tenant_id, actor, resourceType: 'backend', resourceId: row.id, resourceName: row.name, action: 'delete',
        from: row.state, to: 'deleted', message: `backend ${row.name} deleted`,
      });
      await this.engine.record(trx, { kind: 'backend.delete', tenantId: row.tenant_id, targetType: 'backend', targetId: row.id, input: {}, actor }, {});
    });
    await this.engine.recorded('backend.delete');
    await this.drivers.forget(row.id);
    this.probedShare.delete(row.id);
    if (localDir && row.node_id === null) await this.reprobeSharers(localDir); // their share of the filesystem just grew
  }

  /** Probes one backend now and stores capacity, capabilities and state. */
  async refresh(ref: string, actor = 'system', sharers?: (id: string) => number | undefined): Promise<Backend> {
    const row = await this.resolve(ref);
    const report = await this.probeDriver(row, sharers);
    // A node syncing now probes its backends itself (the node monitor's full sync): nothing to say meanwhile.
    if (!report.ok && report.nodeState === 'syncing') return this.get(row.id);
    await this.store.transaction(async (trx) => {
      const current = await this.repos.backends.findById(trx, row.id);
      if (!current) return;
      const next = { ...current };
      applyReport(next, report);
      await this.repos.backends.update(trx, row.id, {
        state: next.state, state_reason: next.state_reason, total_bytes: next.total_bytes, free_bytes: next.free_bytes,
        used_bytes: next.used_bytes, capabilities_reported: next.capabilities_reported, last_probe_at: next.last_probe_at,
      });
      if (next.state !== current.state) {
        await this.repos.events.append(trx, {
          tenantId: row.tenant_id, actor, resourceType: 'backend', resourceId: row.id, resourceName: row.name, action: 'probe',
          from: current.state, to: next.state, message: `backend ${row.name} is ${next.state}${next.state_reason ? `: ${next.state_reason}` : ''}`,
        });
      }
    });
    this.rememberShare(row.id, report);
    // Counted after the result is stored: whoever sees the new seq then reads this probe's result or a later one.
    this.activity.probed(row.id);
    return this.get(row.id);
  }

  /** One probe pass over every backend (the server's `backend-probe` loop runs it periodically). */
  async probeAll(): Promise<void> {
    const rows = await this.repos.backends.listAll(this.store.db);
    const sharing = await this.sharingOf(rows);
    await Promise.allSettled(rows.map((r) => this.refresh(r.id, 'system', sharing.countOf)));
  }

  /**
   * How many local backends share each one's filesystem, learned once for a pass over many: each
   * probe looking for itself would read every backend row and stat every directory, n² per pass
   * (a million stats at 1,000 backends on one disk). Undefined for a backend whose directory
   * cannot be read now (its probe then looks for itself).
   */
  private async sharingOf(rows: readonly BackendRow[]): Promise<FilesystemSharing> {
    const sharing = new Map<string, number>();
    const devOf = new Map<string, string>();
    for (const o of this.backendDirs(onNode(rows, null))) {
      const fs = await filesystemOf(o.dir);
      if (fs === undefined) continue;
      devOf.set(o.id, fs);
      sharing.set(fs, (sharing.get(fs) ?? 0) + 1);
    }
    return {
      countOf: (id) => {
        const fs = devOf.get(id);
        return fs === undefined ? undefined : sharing.get(fs);
      },
      on: (filesystems) => [...devOf].filter(([, fs]) => filesystems.has(fs)).map(([id]) => id),
    };
  }

  /** The node named `name`, or NODE_NOT_FOUND (checked before anything is probed or stored). */
  private async nodeNamed(name: string): Promise<{ id: string }> {
    const node = await this.repos.nodes.findByName(this.store.db, name);
    if (!node) throw new StowageError('NODE_NOT_FOUND', `node "${name}" does not exist; see \`stowage node list\``, { node: name });
    return node;
  }

  /** The data dir no backend may use: the server's own for local backends; none here for a node's (this machine's paths say nothing about it). */
  private dataDirOn(nodeId: string | null): string | null {
    return nodeId === null ? this.drivers.dataDir : null;
  }

  /** Directories of the registered backends other than `exceptId` (rows whose URI no longer builds are skipped). */
  private backendDirs(rows: readonly BackendRow[], exceptId?: string): BackendDir[] {
    const out: BackendDir[] = [];
    for (const r of rows) {
      if (r.id === exceptId) continue;
      let dir: string | undefined;
      try {
        // A node's backend: the driver as built here from the same URI tells its directory (it is never called).
        dir = (r.node_id === null ? this.drivers.get(r) : this.drivers.validate(r.driver_uri, readJson<Record<string, string>>(r.options, {}))).localDir;
      } catch {
        dir = undefined;
      }
      if (dir) out.push({ id: r.id, name: r.name, dir });
    }
    return out;
  }

  /** The other backends whose directory is on the same filesystem as `dir`. */
  private async sharersOf(dir: string, exceptId: string): Promise<BackendDir[]> {
    const fs = await filesystemOf(dir);
    if (fs === undefined) return [];
    const out: BackendDir[] = [];
    for (const o of this.backendDirs(onNode(await this.repos.backends.listAll(this.store.db), null), exceptId)) {
      if ((await filesystemOf(o.dir)) === fs) out.push(o);
    }
    return out;
  }

  /**
   * Has the backends on `dir`'s filesystem probed again in the background, after one joined or left
   * it: the request does not wait for them, and a burst of requests shares the passes.
   */
  private async reprobeSharers(dir: string): Promise<void> {
    const fs = await filesystemOf(dir);
    if (fs !== undefined) this.sharerReprobe.request(fs);
  }

  /** One background pass: probes, one after another, every local backend on `filesystems` (one scan of rows and directories). */
  private async reprobeOn(filesystems: ReadonlySet<string>, stopped: () => boolean): Promise<void> {
    const sharing = await this.sharingOf(await this.repos.backends.listAll(this.store.db));
    for (const id of sharing.on(filesystems)) {
      if (stopped()) return;
      const n = sharing.countOf(id);
      if (n !== undefined && this.probedShare.get(id) === n) continue; // stored with this share already
      await this.refresh(id, 'system', sharing.countOf).catch((err: unknown) => {
        if (toStowageError(err).code === 'BACKEND_NOT_FOUND') return; // deleted since the scan: nothing to share
        this.logger.warn({ err, backend: id }, 'backend probe after a filesystem change failed');
      });
    }
  }

  /** Notes the share a stored probe result was computed with (none: a failed probe, or not a local directory). */
  private rememberShare(id: string, outcome: ProbeOutcome): void {
    if (outcome.ok && outcome.share !== undefined) this.probedShare.set(id, outcome.share);
    else this.probedShare.delete(id);
  }

  /** Probes the driver; a backend sharing its filesystem with others reports its share (see shareOf). */
  private async probeDriver(row: Pick<BackendRow, 'id' | 'name' | 'driver_uri' | 'options' | 'admin_state' | 'node_id'>, sharers?: (id: string) => number | undefined): Promise<ProbeOutcome> {
    try {
      const driver = this.drivers.get(row);
      const whole = await driver.probe(AbortSignal.timeout(PROBE_TIMEOUT_MS));
      if (!driver.localDir || row.node_id !== null) return { ok: true, report: whole, adminState: row.admin_state };
      const share = sharers?.(row.id) ?? 1 + (await this.sharersOf(driver.localDir, row.id)).length;
      return { ok: true, report: shareOf(whole, share), adminState: row.admin_state, share };
    } catch (err) {
      const e = toStowageError(err);
      this.logger.warn({ backend: row.id, code: e.code, msg: e.message }, 'backend probe failed');
      // A node that is not serving: the same reason the node monitor gives, so they never flap.
      const down = nodeDownReasonOf(e);
      if (down) return { ok: false, reason: down.reason, adminState: row.admin_state, nodeState: down.state };
      return { ok: false, reason: `probe failed: ${e.message}`, adminState: row.admin_state };
    }
  }
}

/** The backends whose files are on the same machine as a backend on `nodeId` (null: the control plane's). */
function onNode(rows: readonly BackendRow[], nodeId: string | null): BackendRow[] {
  return rows.filter((r) => r.node_id === nodeId);
}

/** Who shares which filesystem, learned once for a pass over many backends (see sharingOf). */
interface FilesystemSharing {
  /** How many local backends are on `id`'s filesystem (undefined: its directory cannot be read now). */
  readonly countOf: (id: string) => number | undefined;
  /** The local backends on any of `filesystems`. */
  readonly on: (filesystems: ReadonlySet<string>) => string[];
}

type ProbeOutcome = { ok: true; report: BackendReport; adminState: string; share?: number } | { ok: false; reason: string; adminState: string; nodeState?: string };

function applyReport(row: BackendRow, p: ProbeOutcome): void {
  row.last_probe_at = nowIso();
  if (p.ok) {
    row.total_bytes = p.report.totalBytes;
    row.free_bytes = p.report.freeBytes;
    row.used_bytes = p.report.usedBytes;
    row.capabilities_reported = writeJson([...p.report.capabilities].sort());
    row.state = p.adminState === 'disabled' ? 'disabled' : 'enabled';
    row.state_reason = p.adminState === 'disabled' ? 'disabled by an operator' : null;
  } else {
    row.state = p.adminState === 'disabled' ? 'disabled' : 'offline';
    row.state_reason = p.reason;
  }
}

function validateNumbers(i: Partial<Pick<CreateBackendInput, 'cost' | 'overcommitRatio' | 'reservedPercent'>>): void {
  if (i.cost !== undefined && (!Number.isInteger(i.cost) || i.cost < 0)) {
    throw new StowageError('VALIDATION_FAILED', 'cost must be a whole number of units per GiB-month, 0 or more', { cost: i.cost });
  }
  if (i.overcommitRatio !== undefined && !(i.overcommitRatio >= 1 && i.overcommitRatio <= 100)) {
    throw new StowageError('VALIDATION_FAILED', 'overcommit ratio must be between 1 (no overcommit) and 100', { overcommitRatio: i.overcommitRatio });
  }
  if (i.reservedPercent !== undefined && !(i.reservedPercent >= 0 && i.reservedPercent < 100)) {
    throw new StowageError('VALIDATION_FAILED', 'reserved percent must be at least 0 and below 100', { reservedPercent: i.reservedPercent });
  }
}

function validateOverrides(o: CapabilityOverrides | undefined): void {
  if (!o) return;
  const known = new Set<string>(CAPABILITIES);
  const bad = [...o.add, ...o.remove].filter((c) => !known.has(c));
  if (bad.length > 0) {
    throw new StowageError('VALIDATION_FAILED', `unknown capabilit${bad.length > 1 ? 'ies' : 'y'} ${bad.join(', ')}; known: ${CAPABILITIES.join(', ')}`, { unknown: bad });
  }
}

/** Placement's view of a backend row plus usage (re-exported for the volume service). */
export function backendTags(row: BackendRow): string[] {
  return readJson<string[]>(row.tags, []);
}

export type { BackendKind };
