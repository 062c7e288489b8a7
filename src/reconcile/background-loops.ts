import type { Logger } from 'pino';
import type { BackendService } from '../backends/backend-service.js';
import type { Config } from '../config/config.js';
import type { Failpoints } from '../operations/failpoints.js';
import { BackgroundLoop, type LoopPass } from '../system/background-loop.js';
import type { ClaimSweeper } from './claim-sweeper.js';
import type { ExportReconciler } from './export-reconciler.js';
import type { HostMonitor } from './host-monitor.js';
import type { StaleStateSweeper } from './stale-state-sweeper.js';

/** The tasks the server runs in the background, each one pass of its loop. */
export interface BackgroundTasks {
  readonly backends: BackendService;
  readonly exports: ExportReconciler;
  readonly staleStates: StaleStateSweeper;
  readonly claims: ClaimSweeper;
  readonly hostMonitor: HostMonitor;
}

/** A store-only pass (sweeps, host monitor) taking this long means the store is stuck. */
const STORE_PASS_TIMEOUT_MS = 60_000;
/** Probes run in parallel, each bounded by its own probe timeout; this only bounds a stuck pass. */
const PROBE_PASS_TIMEOUT_MS = 120_000;
/** An export pass makes several driver calls per backend, each bounded by `reconcileDriverTimeoutMs`. */
const EXPORT_PASS_CALLS = 10;

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
    loop('host-monitor', Math.max(100, Math.floor(config.hostDownAfterMs / 3)), STORE_PASS_TIMEOUT_MS, () => tasks.hostMonitor.check()),
    loop('claim-sweep', config.reconcileIntervalMs, STORE_PASS_TIMEOUT_MS, () => tasks.claims.sweep()),
  ];
}
