import type { Logger } from 'pino';
import type { BackendService } from '../backends/backend-service.js';
import type { Config } from '../config/config.js';
import type { Failpoints } from '../operations/failpoints.js';
import { BackgroundLoop, type LoopPass } from '../system/background-loop.js';
import type { ClaimSweeper } from './claim-sweeper.js';
import type { ExportReconciler } from './export-reconciler.js';
import { EXPORT_WATCH_CHECK_TIMEOUT_MS, type ExportWatch } from './export-watch.js';
import type { HostMonitor } from './host-monitor.js';
import type { NodeMonitor } from '../nodes/node-monitor.js';
import type { RetentionSweeper } from './retention-sweeper.js';
import type { StaleStateSweeper } from './stale-state-sweeper.js';

/** The tasks the server runs in the background, each one pass of its loop. */
export interface BackgroundTasks {
  readonly backends: BackendService;
  readonly exports: ExportReconciler;
  readonly exportWatch: ExportWatch;
  readonly staleStates: StaleStateSweeper;
  readonly claims: ClaimSweeper;
  readonly hostMonitor: HostMonitor;
  readonly nodeMonitor: NodeMonitor;
  readonly retention: RetentionSweeper;
}

/** A store-only pass (sweeps, host monitor) taking this long means the store is stuck. */
const STORE_PASS_TIMEOUT_MS = 60_000;
/** Probes run in parallel, each bounded by its own probe timeout; this only bounds a stuck pass. */
const PROBE_PASS_TIMEOUT_MS = 120_000;
/** An export pass makes several driver calls per backend, each bounded by `reconcileDriverTimeoutMs`. */
const EXPORT_PASS_CALLS = 10;
/** The host monitor looks this often at most (a store-only pass), so a host is down at most this long after `hostDownAfterMs`. */
const HOST_MONITOR_MAX_INTERVAL_MS = 1000;
/** Retention counts in days: an hourly sweep keeps every table within an hour of its policy. */
export const RETENTION_SWEEP_INTERVAL_MS = 3_600_000;
/**
 * A sweep deletes in batches and stops between them when aborted; after a long outage or an upgrade
 * the first sweeps may have a large backlog, so one pass may work this long before the next goes on.
 */
const RETENTION_PASS_TIMEOUT_MS = 10 * 60_000;

/**
 * Builds (does not start) one BackgroundLoop per background task, on the configured intervals. Each
 * pass first hits the `loop/<name>:pass` failpoint, so a recovery test can hold a pass mid-flight.
 */
export function backgroundLoops(tasks: BackgroundTasks, config: Config, failpoints: Failpoints, logger: Logger): BackgroundLoop[] {
  const loop = (name: string, intervalMs: number, timeoutMs: number, pass: LoopPass, runAtStart = false): BackgroundLoop => new BackgroundLoop(
    async (signal) => { await failpoints.hit(`loop/${name}:pass`); await pass(signal); },
    { name, intervalMs, timeoutMs, runAtStart, logger },
  );
  return [
    loop('backend-probe', config.probeIntervalMs, PROBE_PASS_TIMEOUT_MS, () => tasks.backends.probeAll()),
    loop('stale-state-sweep', config.reconcileIntervalMs, STORE_PASS_TIMEOUT_MS, () => tasks.staleStates.sweep()),
    // Target daemons keep nothing across a restart, so the first pass runs as soon as the server is up.
    loop('export-reconcile', config.reconcileIntervalMs, EXPORT_PASS_CALLS * config.reconcileDriverTimeoutMs, (signal) => tasks.exports.reconcile(signal), true),
    // Between full passes, a restarted target daemon is noticed within one watch interval and its backend healed at once.
    loop('export-watch', config.exportWatchMs, EXPORT_WATCH_CHECK_TIMEOUT_MS + EXPORT_PASS_CALLS * config.reconcileDriverTimeoutMs, (signal) => tasks.exportWatch.check(signal)),
    loop('host-monitor', hostMonitorIntervalMs(config.hostDownAfterMs), STORE_PASS_TIMEOUT_MS, () => tasks.hostMonitor.check()),
    // Each heartbeat is bounded by half the interval and the gap is the other half: a round at least every nodeHeartbeatMs.
    loop('node-monitor', tasks.nodeMonitor.roundGapMs, STORE_PASS_TIMEOUT_MS, (signal) => tasks.nodeMonitor.check(signal), true),
    loop('claim-sweep', config.reconcileIntervalMs, STORE_PASS_TIMEOUT_MS, () => tasks.claims.sweep()),
    // At start too: a server restarted more often than hourly would otherwise never sweep.
    loop('retention-sweep', RETENTION_SWEEP_INTERVAL_MS, RETENTION_PASS_TIMEOUT_MS, (signal) => tasks.retention.sweep(signal), true),
  ];
}

/** How often the host monitor looks: a tenth of `hostDownAfterMs`, at most every second (at least every 100 ms). */
export function hostMonitorIntervalMs(hostDownAfterMs: number): number {
  return Math.max(100, Math.min(HOST_MONITOR_MAX_INTERVAL_MS, Math.floor(hostDownAfterMs / 10)));
}
