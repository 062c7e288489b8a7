import type { BlockDriver, DriverDeps } from '../drivers/sdk/types.js';
import type { DriverRegistry } from '../drivers/sdk/registry.js';
import { readJson } from '../store/json.js';
import type { BackendRow } from '../store/schema.js';

/** One live driver instance per backend, built from its URI and options on first use. */
export class DriverCache {
  private readonly drivers = new Map<string, { uri: string; driver: BlockDriver }>();

  constructor(private readonly registry: DriverRegistry, private readonly deps: DriverDeps) {}

  /** The driver for a backend row (rebuilt if its URI changed). */
  get(row: Pick<BackendRow, 'id' | 'driver_uri' | 'options'>): BlockDriver {
    const hit = this.drivers.get(row.id);
    if (hit?.uri === row.driver_uri) return hit.driver;
    const driver = this.registry.create(row.driver_uri, readJson<Record<string, string>>(row.options, {}), this.deps);
    this.drivers.set(row.id, { uri: row.driver_uri, driver });
    return driver;
  }

  /** Builds a driver (not cached) to validate a URI and options; throws INVALID_DRIVER_URI/UNKNOWN_DRIVER. */
  validate(uri: string, options: Readonly<Record<string, string>>): BlockDriver {
    return this.registry.create(uri, options, this.deps);
  }

  /** The server's data dir, where no backend may keep its files (but its `volumes/`). */
  get dataDir(): string {
    return this.deps.dataDir;
  }

  /** Drops (and closes) the driver of a deleted backend. */
  async forget(id: string): Promise<void> {
    const hit = this.drivers.get(id);
    this.drivers.delete(id);
    await hit?.driver.close?.();
  }

  async closeAll(): Promise<void> {
    const all = [...this.drivers.values()];
    this.drivers.clear();
    await Promise.allSettled(all.map(async (d) => { await d.driver.close?.(); }));
  }
}
