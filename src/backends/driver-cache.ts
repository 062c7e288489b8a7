import { StowageError } from '../core/errors.js';
import type { BlockDriver, DriverDeps } from '../drivers/sdk/types.js';
import type { DriverRegistry } from '../drivers/sdk/registry.js';
import { readJson } from '../store/json.js';
import type { BackendRow } from '../store/schema.js';

/** The backend fields a driver is built from. */
export type DriverSource = Pick<BackendRow, 'id' | 'name' | 'driver_uri' | 'options' | 'node_id'>;

/**
 * Builds the driver of a backend placed on a storage node: the same contract, each call run on the
 * node (nodes/remote-driver.ts). `shape` is the driver as this process would build it from the same
 * URI, never called: it tells which capabilities and ports the remote one has.
 */
export interface RemoteDriverFactory {
  create(backend: DriverSource, shape: BlockDriver): BlockDriver;
}

/** One live driver instance per backend, built from its URI and options on first use. */
export class DriverCache {
  private readonly drivers = new Map<string, { key: string; driver: BlockDriver }>();

  constructor(private readonly registry: DriverRegistry, private readonly deps: DriverDeps, private readonly remote?: RemoteDriverFactory) {}

  /** The driver for a backend row (rebuilt if its URI or node changed); a remote one when the backend has a node. */
  get(row: DriverSource): BlockDriver {
    const key = `${row.node_id ?? ''}|${row.driver_uri}|${row.options}`;
    const hit = this.drivers.get(row.id);
    if (hit?.key === key) return hit.driver;
    const local = this.registry.create(row.driver_uri, readJson<Record<string, string>>(row.options, {}), this.deps);
    let driver = local;
    if (row.node_id !== null) {
      if (!this.remote) throw new StowageError('INTERNAL', `backend ${row.name} runs on a node, and this process has no node channel`, { backend: row.name });
      driver = this.remote.create(row, local);
    }
    this.drivers.set(row.id, { key, driver });
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
