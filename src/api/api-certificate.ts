import { readFileSync } from 'node:fs';
import type { Config } from '../config/config.js';
import { StowageError } from '../core/errors.js';
import type { ControlIdentities } from '../nodes/control-identities.js';
import { identityOf, type TlsIdentity } from '../system/tls-identity.js';

/** True for addresses whose traffic never leaves the machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Whether the API serves HTTPS with this config (`tls: auto` is on unless it listens on loopback only). */
export function apiUsesTls(config: Pick<Config, 'tls' | 'host'>): boolean {
  return config.tls === 'on' || (config.tls === 'auto' && !isLoopback(config.host));
}

/**
 * The certificate the API serves, or null for plain HTTP: the configured tlsCertFile/tlsKeyFile,
 * else the `api` identity generated once and kept in the store (the same for every replica). Its
 * fingerprint is what the CLI pins on first use and what enrollment tokens carry.
 */
export async function resolveApiCertificate(config: Config, identities: ControlIdentities): Promise<TlsIdentity | null> {
  if (!apiUsesTls(config)) return null;
  if (config.tlsCertFile || config.tlsKeyFile) {
    if (!config.tlsCertFile || !config.tlsKeyFile) throw new StowageError('VALIDATION_FAILED', 'tlsCertFile and tlsKeyFile go together: set both, or neither for a generated certificate', {});
    try {
      return identityOf(readFileSync(config.tlsKeyFile, 'utf8'), readFileSync(config.tlsCertFile, 'utf8'));
    } catch (err) {
      throw new StowageError('VALIDATION_FAILED', `cannot read the API certificate: ${(err as Error).message}`, { file: config.tlsCertFile });
    }
  }
  return identities.get('api', [config.host]);
}
