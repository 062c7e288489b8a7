import { StowageError } from '../core/errors.js';
import { DriverRegistry } from '../drivers/sdk/registry.js';
import type { BlockDriver, DriverDeps, DriverFactory } from '../drivers/sdk/types.js';
import type { BackendSpec } from '../nodes/node-protocol.js';

/**
 * The drivers a node runs: one per backend the control plane has called it for, built from the
 * URI and options each call carries (the same factories and checks as in the control plane), and
 * rebuilt when they change. The node keeps nothing else: a restart loses only this cache.
 */
export class NodeDriverHost {
  private readonly registry: DriverRegistry;
  private readonly drivers = new Map<string, { key: string; driver: BlockDriver }>();

  constructor(factories: readonly DriverFactory[], private readonly deps: DriverDeps) {
    this.registry = new DriverRegistry(factories);
  }

  /** The driver for `spec`; throws INVALID_DRIVER_URI/UNKNOWN_DRIVER for a URI this node cannot run. */
  driverFor(spec: BackendSpec): BlockDriver {
    if (typeof spec.id !== 'string' || typeof spec.uri !== 'string') throw new StowageError('VALIDATION_FAILED', 'a call must name its backend (id, uri)', {});
    const key = `${spec.uri}|${JSON.stringify(spec.options ?? {})}`;
    const hit = this.drivers.get(spec.id);
    if (hit?.key === key) return hit.driver;
    const driver = this.registry.create(spec.uri, spec.options ?? {}, this.deps);
    this.drivers.set(spec.id, { key, driver });
    return driver;
  }

  /** Ids of the backends built so far. */
  backendIds(): string[] {
    return [...this.drivers.keys()];
  }

  async closeAll(): Promise<void> {
    const all = [...this.drivers.values()];
    this.drivers.clear();
    await Promise.allSettled(all.map(async (d) => { await d.driver.close?.(); }));
  }
}
