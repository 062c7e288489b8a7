import type { AgentAnswer, AgentReport, DesiredAttachment } from '../core/schemas/attachment-schema.js';
import { compact, nonEmpty } from '../core/compact.js';
import { StowageError, toStowageError } from '../core/errors.js';
import type { AgentLogger } from './agent-logger.js';
import { selectConnector, type Connector } from './connectors/connector.js';
import { QemuVm } from './hypervisor/qemu-vm.js';
import type { VmDirectory } from './vm-directory.js';

/** How the agent reaches the control plane: one call, the heartbeat report. */
export interface ControlPlane {
  /** With waitMs > 0 the control plane may hold its answer until the wanted set changes (long poll). */
  report(hostName: string, report: AgentReport, signal: AbortSignal, waitMs?: number): Promise<AgentAnswer>;
}

/** Everything the agent needs; built by `stowage agent` from flags. */
export interface HostAgentOptions {
  readonly hostName: string;
  readonly initiatorName: string;
  readonly addresses: readonly string[];
  readonly vms: VmDirectory;
  readonly connectors: readonly Connector[];
  readonly controlPlane: ControlPlane;
  readonly logger: AgentLogger;
  /** Heartbeat until the control plane says otherwise, in ms. */
  readonly heartbeatMs: number;
}

/** What one pass did, for logs and tests. */
export interface PassResult {
  readonly connected: string[];
  readonly disconnected: string[];
  readonly failed: string[];
  readonly hostState: string;
}

/**
 * The host agent: every heartbeat it reads what is really plugged into its VMs (query-block and
 * friends), reports that, and converges to exactly the set the control plane answers with —
 * connecting what is missing, removing what is unwanted. It keeps no state of its own, so a
 * restarted agent rebuilds its view and never detaches what should stay; when the control plane
 * cannot be reached it changes nothing.
 */
export class HostAgent {
  private readonly vmCache = new Map<string, { socket: string; vm: QemuVm }>();
  private timer: NodeJS.Timeout | null = null;
  private heartbeatMs: number;
  private running: Promise<PassResult | null> | null = null;
  private readonly abort = new AbortController();
  /** The last report sent, repeated by the keep-alive while a pass is busy elsewhere. */
  private lastReport: AgentReport | null = null;
  /** When the last report (of a pass or a keep-alive) was sent, epoch ms. */
  private lastReportAt = 0;
  private reportsInFlight = 0;
  private keepAliveTimer: NodeJS.Timeout | null = null;
  private keepAliveCall: Promise<void> | null = null;

  constructor(private readonly o: HostAgentOptions) {
    this.heartbeatMs = o.heartbeatMs;
  }

  /** Runs passes every heartbeat until stop(). */
  start(): void {
    const loop = async (): Promise<void> => {
      const r = await this.pass().catch((err: unknown) => { this.o.logger.warn({ err: toStowageError(err).message }, 'agent pass failed'); return null; });
      // The report long-polls for up to a heartbeat, so after a clean pass the next starts at once;
      // after a failure (or with the control plane unreachable) wait a heartbeat before retrying.
      const delay = r && r.failed.length === 0 ? 50 : this.heartbeatMs;
      if (!this.abort.signal.aborted) this.timer = setTimeout(() => { void loop(); }, delay);
    };
    void loop();
    this.scheduleKeepAlive();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    if (this.timer) clearTimeout(this.timer);
    if (this.keepAliveTimer) clearTimeout(this.keepAliveTimer);
    await this.running?.catch(() => undefined);
    await this.keepAliveCall;
    await Promise.allSettled([...this.vmCache.values()].map(async (e) => { await e.vm.close(); }));
    this.vmCache.clear();
  }

  /** One report-and-converge pass; concurrent calls share it. Returns null when the control plane was unreachable. */
  pass(): Promise<PassResult | null> {
    this.running ??= this.doPass().finally(() => { this.running = null; });
    return this.running;
  }

  private async doPass(): Promise<PassResult | null> {
    const signal = this.abort.signal;
    const vms = await this.openVms();
    const actual = await this.readActual(vms, signal);
    let answer: AgentAnswer;
    try {
      answer = await this.send(this.reportOf(vms, actual), signal, this.heartbeatMs);
    } catch (err) {
      // Without an answer we know nothing about what is wanted: change nothing.
      this.o.logger.warn({ err: toStowageError(err).message }, 'control plane unreachable; keeping everything as it is');
      return null;
    }
    this.heartbeatMs = answer.heartbeatIntervalMs;
    const desired = new Map(answer.desired.map((d) => [`${d.volumeId}/${d.instance}`, d]));
    const result: PassResult = { connected: [], disconnected: [], failed: [], hostState: answer.hostState };
    for (const [key, d] of desired) {
      const have = actual.get(key);
      if (have?.state === 'attached') continue;
      await this.connect(vms, d, signal).then(() => { result.connected.push(key); }, (err: unknown) => {
        result.failed.push(key);
        this.o.logger.warn({ volumeId: d.volumeId, instance: d.instance, err: toStowageError(err).message }, 'connect failed');
      });
    }
    for (const [key, have] of actual) {
      if (desired.has(key)) continue;
      const vm = vms.get(have.instance);
      if (!vm) continue;
      try {
        await vm.detach(have.volumeId, signal);
        result.disconnected.push(key);
        this.o.logger.info({ volumeId: have.volumeId, instance: have.instance }, 'disconnected an unwanted volume');
      } catch (err) {
        result.failed.push(key);
        this.o.logger.warn({ volumeId: have.volumeId, instance: have.instance, err: toStowageError(err).message }, 'disconnect failed');
      }
    }
    if (result.connected.length > 0 || result.disconnected.length > 0) {
      // Tell the control plane at once, so waiting attach/detach operations move on.
      const now = await this.readActual(vms, signal);
      await this.send(this.reportOf(vms, now), signal).catch(() => undefined);
    }
    return result;
  }

  /** Sends a report after any keep-alive still in flight, so an older report never lands after a newer one. */
  private async send(report: AgentReport, signal: AbortSignal, waitMs?: number): Promise<AgentAnswer> {
    await this.keepAliveCall;
    this.lastReport = report;
    this.lastReportAt = Date.now();
    this.reportsInFlight += 1;
    try {
      return await this.o.controlPlane.report(this.o.hostName, report, signal, waitMs);
    } finally {
      this.reportsInFlight -= 1;
    }
  }

  /**
   * The heartbeat must not wait for the work: a pass that spends long connecting a disk (a
   * blockdev-add to a dead portal may take a minute, and can stall QEMU's monitor with it) or
   * waits out a failure would let the host look down. So whenever no report has gone out for a
   * heartbeat and none is in flight, the last report is sent again (the same facts the control
   * plane already has; nothing read from QEMU) and its answer only updates the heartbeat.
   */
  private scheduleKeepAlive(): void {
    if (this.abort.signal.aborted) return;
    this.keepAliveTimer = setTimeout(() => {
      this.keepAliveTimer = null;
      const report = this.lastReport;
      if (report && this.reportsInFlight === 0 && !this.keepAliveCall && Date.now() - this.lastReportAt >= this.heartbeatMs) {
        this.lastReportAt = Date.now();
        this.keepAliveCall = this.o.controlPlane.report(this.o.hostName, report, this.abort.signal, 0).then(
          (a) => { this.heartbeatMs = a.heartbeatIntervalMs; },
          (err: unknown) => { this.o.logger.debug({ err: toStowageError(err).message }, 'keep-alive report failed'); },
        ).finally(() => { this.keepAliveCall = null; });
      }
      this.scheduleKeepAlive();
    }, Math.max(50, Math.floor(this.heartbeatMs / 4)));
    this.keepAliveTimer.unref();
  }

  private async connect(vms: Map<string, QemuVm>, d: DesiredAttachment, signal: AbortSignal): Promise<void> {
    const vm = vms.get(d.instance);
    if (!vm) throw new StowageError('NOT_FOUND', `no VM ${d.instance} on this host`, { instance: d.instance });
    const connector = selectConnector(this.o.connectors, d.connection);
    await connector.connect(vm, d.volumeId, d.connection, d.mode, signal);
    this.o.logger.info({ volumeId: d.volumeId, instance: d.instance, protocol: d.connection.protocol }, 'connected');
  }

  private reportOf(vms: Map<string, QemuVm>, actual: Map<string, { volumeId: string; instance: string; state: string; deviceId: string | undefined }>): AgentReport {
    return compact({
      initiatorName: nonEmpty(this.o.initiatorName),
      addresses: [...this.o.addresses],
      connectors: this.o.connectors.map((c) => c.protocol),
      instances: [...vms.keys()],
      connected: [...actual.values()].filter((a) => a.state === 'attached' && a.deviceId).map((a) => ({ volumeId: a.volumeId, instance: a.instance, deviceId: a.deviceId ?? '' })),
    });
  }

  /** Every volume of ours plugged (fully or partly) into each VM, keyed `volumeId/instance`. */
  private async readActual(vms: Map<string, QemuVm>, signal: AbortSignal) {
    const out = new Map<string, { volumeId: string; instance: string; state: string; deviceId: string | undefined }>();
    for (const [name, vm] of vms) {
      try {
        for (const a of await vm.listAttached(signal)) out.set(`${a.volumeId}/${name}`, { volumeId: a.volumeId, instance: name, state: a.state, deviceId: a.deviceId });
      } catch (err) {
        this.o.logger.warn({ instance: name, err: toStowageError(err).message }, 'cannot read VM; leaving it out of this pass');
        vms.delete(name);
        const cached = this.vmCache.get(name);
        this.vmCache.delete(name);
        await cached?.vm.close().catch(() => undefined);
      }
    }
    return out;
  }

  /** Opens (and caches: a QMP socket takes one client) every VM in the directory; drops vanished ones. */
  private async openVms(): Promise<Map<string, QemuVm>> {
    const found = await this.o.vms.list();
    for (const [name, entry] of this.vmCache) {
      if (found.get(name) !== entry.socket) {
        this.vmCache.delete(name);
        await entry.vm.close().catch(() => undefined);
      }
    }
    const out = new Map<string, QemuVm>();
    for (const [name, socket] of found) {
      let entry = this.vmCache.get(name);
      if (!entry) {
        try {
          entry = { socket, vm: await QemuVm.open(name, socket, { logger: this.o.logger }) };
          this.vmCache.set(name, entry);
        } catch (err) {
          this.o.logger.warn({ instance: name, err: toStowageError(err).message }, 'cannot open VM monitor yet');
          continue;
        }
      }
      out.set(name, entry.vm);
    }
    return out;
  }
}

/** The control plane over HTTP(S) with a bearer token (`fetchFn`: a pinned fetch for HTTPS, see agentFetch). */
export function httpControlPlane(apiUrl: string, token: string, timeoutMs = 15_000, fetchFn: typeof fetch = fetch): ControlPlane {
  return {
    async report(hostName, report, signal, waitMs = 0) {
      const res = await fetchFn(`${apiUrl.replace(/\/$/, '')}/v1/agents/${encodeURIComponent(hostName)}/report?waitMs=${String(waitMs)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify(report),
        signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs + waitMs)]),
      });
      const body: unknown = await res.json();
      if (!res.ok) {
        const e = body as { code?: string; message?: string };
        throw new StowageError('BACKEND_UNAVAILABLE', `control plane answered ${res.status}: ${e.code ?? ''} ${e.message ?? ''}`, {});
      }
      return body as AgentAnswer;
    },
  };
}
