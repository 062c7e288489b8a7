import { StowageError } from '../../core/errors.js';
import { CAPABILITY_PORTS, portOf } from './ports.js';
import type { BackendReport, BlockDriver, Capability } from './types.js';

/**
 * Throws INTERNAL naming the driver, the capability and the port when the driver declares a
 * capability without the port that capability needs (`access.chap` without an access port, say):
 * such a driver is a bug, refused before any backend uses it.
 */
export function assertDeclaredPorts(driver: BlockDriver): void {
  for (const cap of driver.capabilities) {
    const port = CAPABILITY_PORTS[cap];
    if (port !== null && portOf(driver, port) === undefined) {
      throw new StowageError('INTERNAL', `driver ${driver.scheme}:// declares the ${cap} capability but has no ${port} port`, { scheme: driver.scheme, capability: cap, port });
    }
  }
}

/**
 * The report, when it names only capabilities the driver declared; otherwise DRIVER_FAILED naming
 * them. Refused rather than filtered: a capability nobody declared has no checked port behind it,
 * and hiding it would hide the driver's bug, while a failed probe shows on the backend at once.
 */
export function checkReport(driver: BlockDriver, report: BackendReport): BackendReport {
  const undeclared = report.capabilities.filter((c: Capability) => !driver.capabilities.has(c));
  if (undeclared.length > 0) {
    throw new StowageError('DRIVER_FAILED', `driver ${driver.scheme}:// reported capabilit${undeclared.length > 1 ? 'ies' : 'y'} ${undeclared.join(', ')} it does not declare`, { scheme: driver.scheme, capabilities: undeclared });
  }
  return report;
}

/**
 * Checks the driver's declared ports (assertDeclaredPorts) and returns it with each probe checked
 * against its declared capabilities (checkReport). Everything else reads through to the driver.
 */
export function checkedDriver<D extends BlockDriver>(driver: D): D {
  assertDeclaredPorts(driver);
  const probe = async (signal: AbortSignal): Promise<BackendReport> => checkReport(driver, await driver.probe(signal));
  return new Proxy(driver, {
    get: (target, prop, receiver): unknown => (prop === 'probe' ? probe : Reflect.get(target, prop, receiver)),
  });
}
