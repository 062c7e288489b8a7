import { networkInterfaces, hostname } from 'node:os';
import { pino } from 'pino';
import { FileConnector } from './connectors/file-connector.js';
import { QemuIscsiConnector } from './connectors/qemu-iscsi-connector.js';
import { HostAgent, httpControlPlane } from './host-agent.js';
import { VmDirectory } from './vm-directory.js';

/** Options of `stowage agent`, after flag parsing. */
export interface RunAgentOptions {
  readonly host: string;
  readonly apiUrl: string;
  readonly token: string;
  readonly vmDir: string;
  readonly initiatorName?: string;
  readonly addresses?: readonly string[];
  /** Directories local file volumes may be attached from (dir backends on this host). */
  readonly fileRoots?: readonly string[];
  readonly heartbeatMs?: number;
  readonly logLevel?: string;
}

/** Non-loopback IPv4 and IPv6 addresses of this host (its network namespace). */
export function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => list ?? []).filter((a) => !a.internal).map((a) => a.address.split('%')[0] ?? a.address);
}

/** Builds and starts the agent; resolves once it stopped (SIGTERM/SIGINT). */
export async function runAgent(o: RunAgentOptions): Promise<void> {
  const logger = pino({ level: o.logLevel ?? 'info' });
  const initiatorName = o.initiatorName ?? `iqn.2026-11.io.stowage.host:${hostname().toLowerCase().replace(/[^a-z0-9.-]/g, '-')}`;
  const agent = new HostAgent({
    hostName: o.host,
    initiatorName,
    addresses: o.addresses && o.addresses.length > 0 ? o.addresses : localAddresses(),
    vms: new VmDirectory(o.vmDir),
    connectors: [new QemuIscsiConnector({ initiatorName }), new FileConnector({ allowedRoots: o.fileRoots ?? [] })],
    controlPlane: httpControlPlane(o.apiUrl, o.token),
    logger,
    heartbeatMs: o.heartbeatMs ?? 2000,
  });
  logger.info({ host: o.host, api: o.apiUrl, vmDir: o.vmDir, initiatorName }, 'stowage agent starting');
  agent.start();
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      logger.info({ signal }, 'stowage agent stopping');
      void agent.stop().then(resolve);
    };
    process.once('SIGTERM', () => { stop('SIGTERM'); });
    process.once('SIGINT', () => { stop('SIGINT'); });
  });
}
