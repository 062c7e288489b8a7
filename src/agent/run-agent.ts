import { networkInterfaces, hostname } from 'node:os';
import { pino } from 'pino';
import { FileConnector } from './connectors/file-connector.js';
import { QemuIscsiConnector } from './connectors/qemu-iscsi-connector.js';
import { HostAgent, httpControlPlane } from './host-agent.js';
import { agentCredential, agentFetch } from './agent-enrollment.js';
import { VmDirectory } from './vm-directory.js';

/** Options of `stowage agent`, after flag parsing. */
export interface RunAgentOptions {
  readonly host: string;
  /** The API (default: the one the agent enrolled with). */
  readonly apiUrl?: string | undefined;
  /** A one-time enrollment token; without it, the credential saved in stateDir by an earlier enrollment. */
  readonly enrollToken?: string | undefined;
  readonly stateDir: string;
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
  const state = await agentCredential({ host: o.host, apiUrl: o.apiUrl, enrollToken: o.enrollToken, stateDir: o.stateDir });
  if (o.enrollToken) logger.info({ host: o.host, api: state.api, apiFingerprint: state.apiFingerprint, stateDir: o.stateDir }, 'enrolled: the agent keeps its own credential from now on');
  const initiatorName = o.initiatorName ?? `iqn.2026-11.io.stowage.host:${hostname().toLowerCase().replace(/[^a-z0-9.-]/g, '-')}`;
  const agent = new HostAgent({
    hostName: o.host,
    initiatorName,
    addresses: o.addresses && o.addresses.length > 0 ? o.addresses : localAddresses(),
    vms: new VmDirectory(o.vmDir),
    connectors: [new QemuIscsiConnector({ initiatorName }), new FileConnector({ allowedRoots: o.fileRoots ?? [] })],
    controlPlane: httpControlPlane(state.api, state.credential, 15_000, agentFetch(state)),
    logger,
    heartbeatMs: o.heartbeatMs ?? 2000,
  });
  logger.info({ host: o.host, api: state.api, vmDir: o.vmDir, initiatorName }, 'stowage agent starting');
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
