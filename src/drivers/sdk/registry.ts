import { StowageError } from '../../core/errors.js';
import { checkedDriver } from './driver-contract.js';
import type { BlockDriver, DriverDeps, DriverFactory } from './types.js';

/** Maps URI schemes (`dir`, `tgt`, …) to driver factories. Built once in main.ts. */
export class DriverRegistry {
  private readonly factories = new Map<string, DriverFactory>();

  constructor(factories: readonly DriverFactory[] = []) {
    for (const f of factories) this.register(f);
  }

  /** Adds a factory; a second one for a scheme already known is refused (INTERNAL). */
  register(factory: DriverFactory): void {
    if (this.factories.has(factory.scheme)) throw new StowageError('INTERNAL', `a driver for ${factory.scheme}:// is already registered`, { scheme: factory.scheme });
    this.factories.set(factory.scheme, factory);
  }

  /** Known schemes, sorted, for error messages and help text. */
  schemes(): string[] {
    return [...this.factories.keys()].sort();
  }

  factoryFor(uri: string): { factory: DriverFactory; url: URL } {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      throw new StowageError('INVALID_DRIVER_URI', `"${uri}" is not a driver URI; expected e.g. dir:///srv/volumes or tgt://10.0.0.1:3260?backing=dir:///srv/luns`, { uri, knownSchemes: this.schemes() });
    }
    const scheme = url.protocol.replace(/:$/, '');
    const factory = this.factories.get(scheme);
    if (!factory) {
      throw new StowageError('UNKNOWN_DRIVER', `unknown driver scheme "${scheme}://"; known schemes: ${this.schemes().map((s) => `${s}://`).join(', ')}`, { scheme, knownSchemes: this.schemes() });
    }
    return { factory, url };
  }

  /** The URI as the driver will use it (see DriverFactory.normalize); throws for a bad one. */
  canonicalUri(uri: string): string {
    const { factory } = this.factoryFor(uri);
    return factory.normalize ? factory.normalize(uri) : uri;
  }

  /**
   * Validates `uri` and builds a driver for it (from its canonical form). The driver is refused
   * (INTERNAL) when it declares a capability without the port it needs, and each of its probes is
   * refused (DRIVER_FAILED) when it reports a capability it did not declare: see driver-contract.ts.
   */
  create(uri: string, options: Readonly<Record<string, string>>, deps: DriverDeps): BlockDriver {
    const { factory, url } = this.factoryFor(this.canonicalUri(uri));
    return checkedDriver(factory.create(url, options, deps));
  }
}
