import type { Logger } from 'pino';
import type { DriverCache } from '../backends/driver-cache.js';
import { toStowageError } from '../core/errors.js';
import { statesWhere } from '../core/state-machine.js';
import { GRANT_STATE_TABLE, VOLUME_STATE_TABLE } from '../core/states.js';
import { portOf, type ExpectedExport } from '../drivers/sdk/ports.js';
import { hostIdentity } from '../hosts/host-service.js';
import { runExclusively } from '../store/loop-lock.js';
import type { Repositories } from '../store/repositories.js';
import type { BackendRow, HostRow } from '../store/schema.js';
import type { Store } from '../store/store.js';
import { volumeHandle } from '../store/volume-repository.js';
import type { ExportReconciler } from './export-reconciler.js';

/**
 * Only settled exports are expected: a volume or grant in a transitional state has an operation
 * making it right now (its target or ACL may not exist yet), which is no sign of a lost daemon.
 */
const WATCHED_VOLUME_STATES = statesWhere(VOLUME_STATE_TABLE, (s) => s.exported && !s.transitional);
const WATCHED_GRANT_STATES = statesWhere(GRANT_STATE_TABLE, (s) => s.desired && !s.transitional);

/** How long one drift check may take by default (it is one cheap read; a slower daemon is asked again next pass). */
export const EXPORT_WATCH_CHECK_TIMEOUT_MS = 10_000;

/** How the watch runs; durations in ms. */
export interface ExportWatchOptions {
  /** The watch's interval (`exportWatchMs`): the first heal after a drift comes at once, the base of the backoff after that. */
  readonly watchMs: number;
  /** The longest wait between heals of a backend that keeps drifting (`reconcileIntervalMs`: the full pass comes anyway). */
  readonly maxBackoffMs: number;
  /** How long one drift check may take; a daemon slower than this is busy or down, and is asked again next time. */
  readonly checkTimeoutMs: number;
}

/** What the watch remembers of one backend between passes. */
interface WatchState {
  /** Heals in a row with no clean check between them (each waits longer: the heal did not stick). */
  streak: number;
  /** No heal before this time (epoch ms). */
  healAfter: number;
  /** The last check got no answer (logged once, on the change). */
  unreachable: boolean;
}

/**
 * Notices a target daemon that lost exports (tgtd keeps nothing across a restart) within a watch
 * interval, instead of at the next full reconcile: every pass asks each backend with an export
 * port, in one cheap read (ExportPort.drift), whether its settled exports are all there, and
 * reconciles at once each backend that lost some. A backend already being reconciled is skipped,
 * one that keeps drifting after a heal is healed with a growing backoff, and with replicas on
 * PostgreSQL one replica at a time runs the pass.
 */
export class ExportWatch {
  private readonly states = new Map<string, WatchState>();

  constructor(
    private readonly store: Store,
    private readonly repos: Repositories,
    private readonly drivers: DriverCache,
    private readonly exports: ExportReconciler,
    private readonly logger: Logger,
    private readonly options: ExportWatchOptions,
  ) {}

  /** One pass (skipped while another replica runs one); `signal` (the loop's) cuts it short. */
  async check(signal: AbortSignal): Promise<void> {
    await runExclusively(this.store, 'export-watch', () => this.pass(signal));
  }

  private async pass(signal: AbortSignal): Promise<void> {
    const backends = (await this.repos.backends.listAll(this.store.db)).filter((b) => b.state !== 'offline');
    for (const id of this.states.keys()) if (!backends.some((b) => b.id === id)) this.states.delete(id);
    if (backends.length === 0) return;
    const hosts = new Map((await this.repos.hosts.list(this.store.db)).map((h) => [h.id, h]));
    const found = await Promise.all(backends.map((b) => this.driftOf(b, hosts, signal)));
    await Promise.all(found.flatMap((f) => (f ? [this.heal(f.backend, f.missing, signal)] : [])));
  }

  private stateOf(backendId: string): WatchState {
    let st = this.states.get(backendId);
    if (!st) this.states.set(backendId, st = { streak: 0, healAfter: 0, unreachable: false });
    return st;
  }

  /** What the backend's daemon lacks, or null when nothing (or when it is busy, has no export port, or did not answer). */
  private async driftOf(b: BackendRow, hosts: ReadonlyMap<string, HostRow>, signal: AbortSignal): Promise<{ backend: BackendRow; missing: readonly string[] } | null> {
    if (this.exports.isReconciling(b.id)) return null;
    let port;
    try { port = portOf(this.drivers.get(b), 'exports'); } catch { return null; }
    if (!port) return null;
    const expected = await this.expectedOf(b, hosts);
    const st = this.stateOf(b.id);
    if (expected.length === 0) { st.streak = 0; return null; }
    let missing: readonly string[];
    try {
      missing = (await port.drift(expected, AbortSignal.any([signal, AbortSignal.timeout(this.options.checkTimeoutMs)]))).missing;
    } catch (err) {
      if (!st.unreachable) this.logger.warn({ backend: b.name, err: toStowageError(err).message }, 'export watch: no answer from the backend\'s target daemon; asking again next pass');
      st.unreachable = true;
      return null;
    }
    if (st.unreachable) this.logger.info({ backend: b.name }, 'export watch: the backend\'s target daemon answers again');
    st.unreachable = false;
    if (missing.length === 0) { st.streak = 0; return null; }
    return Date.now() < st.healAfter || this.exports.isReconciling(b.id) ? null : { backend: b, missing };
  }

  /** The backend's settled volumes and the hosts their active grants let in (no secrets: the check does not need them). */
  private async expectedOf(b: BackendRow, hosts: ReadonlyMap<string, HostRow>): Promise<ExpectedExport[]> {
    const vols = await this.repos.volumes.listByBackend(this.store.db, b.id, WATCHED_VOLUME_STATES);
    if (vols.length === 0) return [];
    const grants = (await this.repos.grants.listDesiredForVolumes(this.store.db, vols.map((v) => v.id))).filter((g) => WATCHED_GRANT_STATES.includes(g.state));
    return vols.flatMap((v) => {
      const handle = volumeHandle(v);
      if (!handle) return [];
      const granted = grants.filter((g) => g.volume_id === v.id).flatMap((g) => {
        const h = hosts.get(g.host_id);
        return h ? [hostIdentity(h)] : [];
      });
      return [{ handle, hosts: granted }];
    });
  }

  private async heal(b: BackendRow, missing: readonly string[], signal: AbortSignal): Promise<void> {
    const st = this.stateOf(b.id);
    st.streak += 1;
    this.logger.warn({ backend: b.name, missing: missing.length, first: missing.slice(0, 5), streak: st.streak }, 'export watch: the target daemon lost exports; reconciling the backend now');
    await this.exports.reconcileBackend(b, signal, { trigger: 'watch', drift: missing });
    const backoffMs = st.streak <= 1 ? 0 : Math.min(this.options.maxBackoffMs, this.options.watchMs * 2 ** (st.streak - 1));
    st.healAfter = Date.now() + backoffMs;
  }
}
