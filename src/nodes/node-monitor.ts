import type { Logger } from 'pino';
import type { BackendService } from '../backends/backend-service.js';
import type { DriverCache } from '../backends/driver-cache.js';
import type { Config } from '../config/config.js';
import { DEFAULT_TENANT_ID, idOf, isId } from '../core/ids.js';
import type { NodeState } from '../core/states.js';
import type { ExportReconciler } from '../reconcile/export-reconciler.js';
import { nowIso } from '../store/json.js';
import type { Repositories } from '../store/repositories.js';
import type { BackendRow, NodeRow, NodeUpdate } from '../store/schema.js';
import { runAsSingleton, SINGLETON_LOCK_KEYS } from '../store/singleton-lock.js';
import type { Store } from '../store/store.js';
import { StowageError, toStowageError } from '../core/errors.js';
import { NODE_PROTOCOL_VERSION, type NodeHealth } from './node-protocol.js';
import { nodeDownReason } from './node-errors.js';
import { waitingFor, type StoreNodeChannels } from './store-node-channels.js';

/** What the monitor needs of the config (all ms). */
export type NodeMonitorConfig = Pick<Config, 'nodeHeartbeatMs' | 'nodeUnreachableAfterMs' | 'reconcileDriverTimeoutMs'>;

/** What one heartbeat found, as the monitor acts on it. */
type Beat =
  | { readonly ok: true; readonly health: NodeHealth; readonly skewMs: number }
  | { readonly ok: false; readonly reason: 'unreachable' | 'auth_failed'; readonly message: string };

/** Node states in which the node must be fully synced before it is ready again. */
const NEEDS_SYNC = {
  enrolling: true, syncing: true, unreachable: true, auth_failed: true, version_mismatch: true, ready: false, draining: false,
} as const satisfies Record<NodeState, boolean>;

/**
 * The control plane's side of node liveness. Every `nodeHeartbeatMs` it calls `health` on every
 * enrolled node, in parallel and each bounded below the interval (a slow node delays no other),
 * and records version, clock skew and the last heartbeat. A node silent for
 * `nodeUnreachableAfterMs` is `unreachable` and its backends `offline`; a node showing another
 * key is `auth_failed`, one speaking another protocol `version_mismatch`. A node that restarted
 * (new boot id), came back, or was just enrolled gets the next epoch and a full sync of its
 * desired state (probe, exports and grants, orphan volumes) before it is `ready`; every write is
 * conditioned on the epoch, so an answer from before is ignored. With PostgreSQL replicas one
 * replica runs it (an advisory lock per pass).
 */
export class NodeMonitor {
  /** Full syncs in flight, by node id (they outlive the pass: a sync never delays a heartbeat). */
  private readonly syncs = new Map<string, Promise<void>>();
  /** Calls each node was running at its last heartbeat this process saw (gone while it is silent). */
  private readonly inFlight = new Map<string, number>();
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly repos: Repositories,
    private readonly channels: StoreNodeChannels,
    private readonly backends: BackendService,
    private readonly exports: ExportReconciler,
    private readonly drivers: DriverCache,
    private readonly config: NodeMonitorConfig,
    private readonly logger: Logger,
  ) {}

  /** One heartbeat round over every node (the server's `node-monitor` loop runs it every nodeHeartbeatMs). */
  async check(signal?: AbortSignal): Promise<void> {
    await runAsSingleton(this.store, SINGLETON_LOCK_KEYS.nodeMonitor, async () => {
      const nodes = await this.repos.nodes.listAll(this.store.db);
      await Promise.allSettled(nodes.map(async (n) => {
        try {
          await this.checkNode(n, signal);
        } catch (err) {
          this.logger.warn({ err, node: n.name }, 'node heartbeat pass failed');
        }
      }));
    });
  }

  /** Resolves once every full sync started so far has ended (tests; the server's stop). */
  async settle(): Promise<void> {
    while (this.syncs.size > 0) await Promise.allSettled([...this.syncs.values()]);
  }

  /** Starts no more syncs and waits for the running ones. */
  async close(): Promise<void> {
    this.closed = true;
    await this.settle();
  }

  /**
   * How long one heartbeat may take: half the interval. The loop waits the other half between
   * rounds (`roundGapMs`), so a round starts at least every nodeHeartbeatMs even when a node hangs,
   * and a dead node is unreachable at most nodeUnreachableAfterMs + nodeHeartbeatMs after its last answer.
   */
  get beatTimeoutMs(): number {
    return Math.max(50, Math.floor(this.config.nodeHeartbeatMs / 2));
  }

  /** The pause between the end of one round and the start of the next (see beatTimeoutMs). */
  get roundGapMs(): number {
    return Math.max(50, this.config.nodeHeartbeatMs - this.beatTimeoutMs);
  }

  /** The calls node `id` was running at its last heartbeat seen here; null when unknown (silent, or monitored by another replica). */
  inFlightOf(id: string): number | null {
    return this.inFlight.get(id) ?? null;
  }

  private async checkNode(n: NodeRow, signal?: AbortSignal): Promise<void> {
    if (n.cert_pem === null) return; // not enrolled yet: nothing to call
    const beat = await this.heartbeat(n, signal);
    if (beat.ok) this.inFlight.set(n.id, beat.health.inFlight);
    else this.inFlight.delete(n.id);
    if (beat.ok) await this.answered(n, beat.health, beat.skewMs);
    else await this.silent(n, beat);
  }

  private async heartbeat(n: NodeRow, signal?: AbortSignal): Promise<Beat> {
    const timeout = AbortSignal.timeout(this.beatTimeoutMs);
    const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
    try {
      const { client } = await this.channels.channel(n.id, 'heartbeat');
      const t0 = Date.now();
      const health = await client.health(sig, n.epoch);
      const t1 = Date.now();
      return { ok: true, health, skewMs: Math.round(Date.parse(health.time) - (t0 + t1) / 2) };
    } catch (err) {
      const e = toStowageError(err);
      const reason = e.code === 'NODE_UNREACHABLE' && e.details.reason === 'auth_failed' ? 'auth_failed' : 'unreachable';
      return { ok: false, reason, message: timeout.aborted ? `no answer within ${this.beatTimeoutMs} ms` : e.message };
    }
  }

  /** A heartbeat answered: record it, then decide whether the node needs a (new) full sync. */
  private async answered(n: NodeRow, h: NodeHealth, skewMs: number): Promise<void> {
    const at = nowIso();
    const seen: NodeUpdate = { last_heartbeat_at: at, version: h.version, clock_skew_ms: skewMs };
    if (h.protocol !== NODE_PROTOCOL_VERSION) {
      const reason = `node speaks protocol ${h.protocol}, this control plane ${NODE_PROTOCOL_VERSION}; upgrade one of them`;
      if (await this.move(n, n.epoch, { ...seen, state: 'version_mismatch', state_reason: reason, unreachable_since: n.unreachable_since ?? at }, `node ${n.name}: ${reason}`)) {
        if (n.state !== 'version_mismatch') this.logger.warn({ node: n.name, protocol: h.protocol }, 'node speaks another protocol version');
        this.channels.abortCalls(n.id, waitingFor({ ...n, state: 'version_mismatch', state_reason: reason, unreachable_since: n.unreachable_since ?? at }));
        await this.backendsOffline(n, nodeDownReason(n.name, 'version_mismatch', n.unreachable_since ?? at));
      }
      return;
    }
    if (!(await this.repos.nodes.updateInEpoch(this.store.db, n.id, n.epoch, seen))) return; // an older epoch's answer
    const restarted = n.boot_id !== h.bootId;
    const lostEpoch = h.epoch !== n.epoch;
    if (NEEDS_SYNC[n.state] || restarted || lostEpoch) {
      const why = restarted ? (n.boot_id === null ? 'its first heartbeat' : 'a restart') : NEEDS_SYNC[n.state] ? `being ${n.state}` : 'losing its epoch';
      this.startSync(n, h, why);
      return;
    }
    const want: NodeState = n.admin_state === 'draining' ? 'draining' : 'ready';
    if (n.state !== want) await this.move(n, n.epoch, { state: want, state_reason: null }, `node ${n.name} is ${want}`);
  }

  /** A heartbeat went unanswered: the node is auth_failed at once, unreachable once silent long enough. */
  private async silent(n: NodeRow, beat: Extract<Beat, { ok: false }>): Promise<void> {
    const lastSeen = n.last_heartbeat_at ?? n.created_at;
    const since = n.unreachable_since ?? lastSeen;
    if (beat.reason === 'auth_failed') {
      if (await this.move(n, n.epoch, { state: 'auth_failed', state_reason: beat.message, unreachable_since: since }, `node ${n.name} showed a key other than the one pinned: ${beat.message}`)) {
        if (n.state !== 'auth_failed') this.logger.warn({ node: n.name, msg: beat.message }, 'node showed a key other than the one pinned');
        this.channels.abortCalls(n.id, waitingFor({ ...n, state: 'auth_failed', state_reason: beat.message, unreachable_since: since }));
        await this.backendsOffline(n, nodeDownReason(n.name, 'auth_failed', since));
      }
      return;
    }
    if (Date.now() - Date.parse(lastSeen) < this.config.nodeUnreachableAfterMs && n.state !== 'unreachable') return;
    if (await this.move(n, n.epoch, { state: 'unreachable', state_reason: beat.message, unreachable_since: since }, `node ${n.name} is unreachable since ${since}: ${beat.message}`)) {
      if (n.state !== 'unreachable') this.logger.warn({ node: n.name, since, msg: beat.message }, 'node is unreachable');
      // A call in flight to it would otherwise hang until nodeCallTimeoutMs before its operation waits.
      this.channels.abortCalls(n.id, waitingFor({ ...n, state: 'unreachable', state_reason: beat.message, unreachable_since: since }));
      await this.backendsOffline(n, nodeDownReason(n.name, 'unreachable', since));
    }
  }

  /** Every backend on the node offline with `reason` (but disabled ones, which stay disabled). */
  /**
   * Moves node `n` (as last read) to `patch.state` in `epoch`, with an event when its state changes,
   * both in one transaction; false when the epoch moved on meanwhile (nothing written).
   */
  private async move(n: NodeRow, epoch: number, patch: NodeUpdate & { state: NodeState }, message: string): Promise<boolean> {
    return this.store.transaction(async (trx) => {
      if (!(await this.repos.nodes.updateInEpoch(trx, n.id, epoch, patch))) return false;
      if (n.state !== patch.state) {
        await this.repos.events.append(trx, {
          tenantId: DEFAULT_TENANT_ID, actor: 'system', resourceType: 'node', resourceId: n.id, resourceName: n.name,
          action: patch.state.replace('_', '-'), from: n.state, to: patch.state, message,
        });
      }
      return true;
    });
  }

  private async backendsOffline(n: NodeRow, reason: string): Promise<void> {
    for (const b of await this.repos.backends.listByNode(this.store.db, n.id)) {
      if (b.state === 'disabled' || (b.state === 'offline' && b.state_reason === reason)) continue;
      await this.store.transaction(async (trx) => {
        await this.repos.backends.update(trx, b.id, { state: 'offline', state_reason: reason, updated_at: nowIso() });
        if (b.state !== 'offline') {
          await this.repos.events.append(trx, {
            tenantId: b.tenant_id, actor: 'system', resourceType: 'backend', resourceId: b.id, resourceName: b.name, action: 'offline',
            from: b.state, to: 'offline', message: `backend ${b.name} is offline: ${reason}`,
          });
        }
      });
    }
  }

  private startSync(n: NodeRow, h: NodeHealth, why: string): void {
    if (this.closed || this.syncs.has(n.id)) return;
    const p = this.sync(n, h, why)
      .catch((err: unknown) => { this.logger.warn({ err, node: n.name }, 'node sync failed; the next heartbeat starts another'); })
      .finally(() => { this.syncs.delete(n.id); });
    this.syncs.set(n.id, p);
  }

  /**
   * Opens the next epoch (in the store, then on the node, so calls made under the old one are
   * refused), replays the node's desired state and makes it ready. A later epoch (another sync,
   * another replica) makes every write here a no-op.
   */
  private async sync(n: NodeRow, h: NodeHealth, why: string): Promise<void> {
    const epoch = await this.repos.nodes.nextEpoch(this.store.db, n.id);
    if (epoch === undefined) return;
    // Answers to calls made under the old epoch would be discarded: end those calls now.
    this.channels.abortCalls(n.id, new StowageError('NODE_UNREACHABLE', `node ${n.name} is re-syncing after ${why} (epoch ${epoch}); the call will be retried once it is ready`, { node: n.name, reason: 'unreachable', epoch }));
    if (!(await this.move(n, epoch, { state: 'syncing', state_reason: `full sync after ${why}`, boot_id: h.bootId, unreachable_since: null }, `node ${n.name}: full sync after ${why} (epoch ${String(epoch)})`))) return;
    this.logger.info({ node: n.name, epoch, why }, 'node syncing');
    const { client } = await this.channels.channel(n.id, 'heartbeat');
    await client.openEpoch(epoch, AbortSignal.timeout(this.config.reconcileDriverTimeoutMs));
    const failures = await this.channels.duringSync(n.id, epoch, () => this.replay(n));
    const row = await this.repos.nodes.findById(this.store.db, n.id);
    if (!row || row.epoch !== epoch) return;
    if (failures.length > 0) {
      await this.repos.nodes.updateInEpoch(this.store.db, n.id, epoch, { state_reason: `full sync incomplete (${failures.join('; ')}); retried at the next heartbeat` });
      // Still syncing: the next heartbeat starts the sync again (under a new epoch).
      return;
    }
    const ready: NodeState = row.admin_state === 'draining' ? 'draining' : 'ready';
    if (await this.move({ ...n, state: 'syncing' }, epoch, { state: ready, state_reason: null }, `node ${n.name} is ${ready}: in sync in epoch ${String(epoch)}`)) {
      this.logger.info({ node: n.name, epoch }, `node ${ready}`);
    }
  }

  /** The full sync of a node's backends; returns what could not be done (empty: in sync). */
  private async replay(n: NodeRow): Promise<string[]> {
    const failures: string[] = [];
    for (const b of await this.repos.backends.listByNode(this.store.db, n.id)) {
      try {
        const probed = await this.backends.refresh(b.id);
        if (probed.state === 'offline' || probed.state === 'error') {
          // The node answers, its driver does not (a dead tgtd): the backend's state, not the node's.
          continue;
        }
        const signal = AbortSignal.timeout(this.config.reconcileDriverTimeoutMs);
        if (!(await this.exports.reconcileBackend(b, signal, { trigger: 'sync', node: n.name }))) failures.push(`${b.name}: its exports could not be reconciled yet`);
        await this.removeOrphanVolumes(b, signal);
      } catch (err) {
        const e = toStowageError(err);
        if (e.code === 'NODE_UNREACHABLE' || e.code === 'NODE_GONE' || e.code === 'STALE_EPOCH') failures.push(`${b.name}: ${e.message}`);
        else this.logger.warn({ err, node: n.name, backend: b.name }, 'backend sync failed');
      }
    }
    return failures;
  }

  /**
   * Removes the volumes on a backend that carry our id scheme but that the store does not know in
   * any state, and no held claim reserves (a create about to insert one): leftovers of a create
   * whose record was lost. Anything not named by our ids is someone else's, and stays.
   */
  private async removeOrphanVolumes(b: BackendRow, signal: AbortSignal): Promise<void> {
    const driver = this.drivers.get(b);
    const listed = (await driver.listVolumes(signal)).filter((v) => isId('volume', v.id));
    const known = new Set<string>(await this.repos.volumes.listKnownIds(this.store.db, listed.map((v) => idOf('volume', v.id))));
    for (const v of listed) {
      if (known.has(v.id)) continue;
      const claims = await this.repos.claims.listForResource(this.store.db, v.id);
      if (claims.some((c) => c.state === 'held')) continue;
      await driver.deleteVolume(v.handle, signal);
      await this.repos.events.append(this.store.db, {
        tenantId: b.tenant_id, actor: 'system', resourceType: 'backend', resourceId: b.id, resourceName: b.name, action: 'orphan-removed',
        from: null, to: null, message: `backend ${b.name}: removed volume ${v.id}, which no volume of the store owns (left by a lost create)`,
      });
      this.logger.warn({ backend: b.name, volume: v.id }, 'removed an orphan volume');
    }
  }
}
