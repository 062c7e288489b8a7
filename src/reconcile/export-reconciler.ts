import type { Logger } from 'pino';
import { isId, type VolumeId } from '../core/ids.js';
import { EXPORTED_VOLUME_STATES } from '../core/states.js';
import { transition } from '../store/transition.js';
import type { DriverCache } from '../backends/driver-cache.js';
import { StowageError } from '../core/errors.js';
import type { DriverHandle, GrantRequest, ReconcileReport } from '../drivers/sdk/types.js';
import { hostIdentity } from '../hosts/host-service.js';
import type { BackendRow } from '../store/schema.js';
import type { Store } from '../store/store.js';
import { volumeHandle } from '../store/volume-repository.js';
import type { SecretBox } from '../system/secret-box.js';
import { grantRequestOf } from '../access/grant-secrets.js';
import type { BackendActivity } from './backend-activity.js';
import { portOf, requirePort } from '../drivers/sdk/ports.js';
import type { Repositories } from '../store/repositories.js';


/** Why a backend is reconciled: the periodic full pass, or the export watch that saw its daemon lose `drift`. */
export type ReconcileCause = { readonly trigger: 'pass' } | { readonly trigger: 'sync'; readonly node: string } | { readonly trigger: 'watch'; readonly drift: readonly string[] };

/**
 * Desired-vs-actual for backend exports: target daemons such as tgtd keep nothing across a restart,
 * so on start and every interval each backend that can reconcile gets the full desired set (its
 * volumes and their granted hosts with CHAP) and restores what is missing and removes orphans under
 * our namespace. Grants whose revoke failed are not desired, so the pass also finishes those revokes.
 */
export class ExportReconciler {
  private running: Promise<void> | null = null;
  /** Backends being reconciled now, by id: a second request for one shares the running reconcile. */
  private readonly inFlight = new Map<string, Promise<boolean>>();

  /** `driverTimeoutMs` bounds each driver call of a pass (reconcile, revoke, grant); `activity` counts finished passes per backend. */
  constructor(private readonly store: Store, private readonly repos: Repositories, private readonly drivers: DriverCache, private readonly secrets: SecretBox, private readonly logger: Logger, private readonly driverTimeoutMs: number, private readonly activity?: BackendActivity) {}

  /** One pass over every backend; concurrent calls share the pass. `signal` (the loop's) cuts driver calls short. */
  reconcile(signal?: AbortSignal): Promise<void> {
    this.running ??= this.pass(signal).finally(() => { this.running = null; });
    return this.running;
  }

  /** A signal for one driver call: the pass's own (stop or timeout) or the per-call timeout, whichever comes first. */
  private callSignal(signal: AbortSignal | undefined): AbortSignal {
    const timeout = AbortSignal.timeout(this.driverTimeoutMs);
    return signal ? AbortSignal.any([signal, timeout]) : timeout;
  }

  /** True while this process reconciles `backendId` (in a full pass or on the export watch's request). */
  isReconciling(backendId: string): boolean {
    return this.inFlight.has(backendId);
  }

  /**
   * Reconciles one backend now (the export watch saw its daemon lose `cause.drift`), sharing a
   * reconcile of it already running. Resolves true when the driver's reconcile succeeded.
   */
  reconcileBackend(b: BackendRow, signal: AbortSignal | undefined, cause: ReconcileCause): Promise<boolean> {
    const running = this.inFlight.get(b.id);
    if (running) return running;
    const next = this.reconcileOne(b, signal, cause).finally(() => { this.inFlight.delete(b.id); });
    this.inFlight.set(b.id, next);
    return next;
  }

  private async pass(signal?: AbortSignal): Promise<void> {
    for (const b of await this.repos.backends.listAll(this.store.db)) {
      if (b.state !== 'offline') await this.reconcileBackend(b, signal, { trigger: 'pass' });
    }
  }

  private async reconcileOne(b: BackendRow, signal: AbortSignal | undefined, cause: ReconcileCause): Promise<boolean> {
    let driver;
    try { driver = this.drivers.get(b); } catch { return false; }
    const exportsPort = portOf(driver, 'exports');
    // Nothing to reconcile on a backend without exports: done.
    if (!exportsPort) return true;
    const access = requirePort(driver, 'access', b.name);
    try {
      const vols = await this.repos.volumes.listByBackend(this.store.db, b.id, [...EXPORTED_VOLUME_STATES]);
      const grantRows = await this.repos.grants.listDesiredForVolumes(this.store.db, vols.map((v) => v.id));
      const hostRows = new Map((await this.repos.hosts.list(this.store.db)).map((h) => [h.id, h]));
      const desired = vols.flatMap((v) => {
        const handle: DriverHandle | null = volumeHandle(v);
        if (!handle) return [];
        const gs: GrantRequest[] = grantRows.filter((g) => g.volume_id === v.id).flatMap((g) => {
          const h = hostRows.get(g.host_id);
          return h ? [grantRequestOf(g, h, this.secrets)] : [];
        });
        return [{ handle, grants: gs }];
      });
      // Exports of volumes this backend does not want now may still belong to a volume being
      // created, or to another backend on the same target daemon: only unknown ones are orphans.
      const knownVolumes = async (ids: readonly string[]): Promise<ReadonlySet<string>> => new Set(
        await this.repos.volumes.listExistingIds(this.store.db, ids.filter((x): x is VolumeId => isId('volume', x))),
      );
      const report = await exportsPort.reconcile(desired, this.callSignal(signal), { knownVolumes });
      // The desired set was read before the driver ran: a revoke (detach, migration, fence) that
      // finished in between was just undone by this pass, and a grant made in between may just
      // have been unbound as unwanted. Redo both at once, from the desired set as it is now.
      const nowDesired = await this.repos.grants.listDesiredForVolumes(this.store.db, vols.map((v) => v.id));
      const key = (g: { volume_id: string; host_id: string }): string => `${g.volume_id}/${g.host_id}`;
      const still = new Set(nowDesired.map(key));
      const before = new Set(grantRows.map(key));
      for (const g of grantRows.filter((x) => !still.has(key(x)))) {
        const v = vols.find((x) => x.id === g.volume_id);
        const h = hostRows.get(g.host_id);
        const handle = v ? volumeHandle(v) : null;
        if (h && handle) await access.revoke(handle, hostIdentity(h), this.callSignal(signal));
      }
      for (const g of nowDesired.filter((x) => !before.has(key(x)))) {
        const v = vols.find((x) => x.id === g.volume_id);
        const h = hostRows.get(g.host_id) ?? await this.repos.hosts.findById(this.store.db, g.host_id);
        const handle = v ? volumeHandle(v) : null;
        if (h && handle) await access.grant(handle, grantRequestOf(g, h, this.secrets), this.callSignal(signal));
      }
      const stale = await this.repos.grants.listErroredForVolumes(this.store.db, vols.map((v) => v.id));
      for (const g of stale) {
        const v = vols.find((x) => x.id === g.volume_id);
        await this.store.transaction((trx) => transition(trx, 'grant', {
          id: g.id, tenantId: g.tenant_id, to: 'revoked', onlyFrom: ['error'], patch: { state_reason: 'revoke completed by the reconciler' },
          event: { actor: 'system', action: 'grant-revoked', message: `revoke completed by the reconciler on ${b.name}`, subject: { type: 'volume', id: g.volume_id, name: v?.name ?? null } },
        }));
      }
      await this.record(b, report, '', cause);
      this.activity?.reconciled(b.id);
      return true;
    } catch (err) {
      this.logger.warn({ err, backend: b.name, trigger: cause.trigger }, 'export reconcile failed');
      // A pass that failed for some volumes may still have restored others: keep that on record.
      const d = err instanceof StowageError ? err.details : {};
      const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
      await this.record(b, { restored: strings(d.restored), removed: strings(d.removed) }, `; ${typeof d.failed === 'number' ? String(d.failed) : 'some'} export(s) could not be restored yet`, cause)
        .catch((e: unknown) => { this.logger.warn({ err: e, backend: b.name }, 'could not record the reconcile event'); });
      return false;
    }
  }

  /** Appends a `reconcile` event (and a log line) when a pass changed anything on the backend. */
  private async record(b: BackendRow, report: ReconcileReport, suffix: string, cause: ReconcileCause): Promise<void> {
    if (report.restored.length === 0 && report.removed.length === 0) return;
    const why = cause.trigger === 'watch' ? ` (the export watch saw the target daemon lose ${String(cause.drift.length)} export item(s))` : '';
    await this.repos.events.append(this.store.db, {
      tenantId: b.tenant_id, actor: 'reconciler', resourceType: 'backend', resourceId: b.id, resourceName: b.name, action: 'reconcile',
      from: null, to: null, message: `backend ${b.name}: restored ${report.restored.length}, removed ${report.removed.length} orphan export(s)${suffix}${why}`,
      details: { restored: [...report.restored], removed: [...report.removed], trigger: cause.trigger, ...(cause.trigger === 'watch' ? { drift: [...cause.drift] } : {}) },
    });
    this.logger.warn({ backend: b.name, trigger: cause.trigger, restored: report.restored.length, removed: report.removed.length }, 'reconciled exports');
  }
}
