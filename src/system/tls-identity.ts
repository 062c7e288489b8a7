import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions, PeerCertificate, TLSSocket, TlsOptions } from 'node:tls';
import type { CommandRunner } from './command-runner.js';
import { PRIVATE_FILE_MODE, ensurePrivateDir } from './private-files.js';

/**
 * A TLS identity that one side generated for itself: a P-256 key that never leaves the process
 * that made it (on disk only 0600), and a self-signed certificate that the other side pins by its
 * SHA-256 fingerprint. Stowage does not run a CA: every channel (control plane ↔ storage node,
 * CLI/agent → API) pins the exact certificate it was shown at enrollment or on first use, so a
 * stolen CA or a mis-issued certificate cannot impersonate either side.
 */
export interface TlsIdentity {
  readonly keyPem: string;
  readonly certPem: string;
  /** `sha256:` and 64 lowercase hex digits of the certificate's DER. */
  readonly fingerprint: string;
  /** When the certificate stops being valid (ISO 8601). */
  readonly expiresAt: string;
}

/** Default lifetime of a generated certificate: a year (re-keying before then is `node rekey`). */
export const IDENTITY_DAYS = 365;

/** The pinning fingerprint of a PEM or DER certificate. */
export function fingerprintOf(cert: string | Buffer): string {
  const der = typeof cert === 'string' ? new X509Certificate(cert).raw : cert;
  return `sha256:${createHash('sha256').update(der).digest('hex')}`;
}

/** True when `s` has the shape of a fingerprint (does not say whose it is). */
export function isFingerprint(s: string): boolean {
  return /^sha256:[0-9a-f]{64}$/.test(s);
}

/**
 * Generates a key and a self-signed certificate for `commonName`, valid for `days`; `altNames` are
 * IP addresses or DNS names put in subjectAltName (clients pin the fingerprint, so they are for
 * people reading the certificate, not for trust). The key is made in this process and handed to
 * `openssl req` through a private temporary file that is removed before this returns.
 */
export async function generateIdentity(runner: CommandRunner, commonName: string, altNames: readonly string[] = [], days = IDENTITY_DAYS): Promise<TlsIdentity> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const dir = mkdtempSync(join(tmpdir(), 'stowage-tls-'));
  try {
    ensurePrivateDir(dir);
    const keyFile = join(dir, 'key.pem');
    const certFile = join(dir, 'cert.pem');
    writeFileSync(keyFile, keyPem, { mode: PRIVATE_FILE_MODE });
    const san = altNames.map((n) => (/^[0-9.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
    await runner.run('openssl', [
      'req', '-x509', '-new', '-key', keyFile, '-out', certFile, '-days', String(days), '-sha256',
      '-subj', `/CN=${commonName.replace(/[^A-Za-z0-9._-]/g, '_')}`,
      ...(san ? ['-addext', `subjectAltName=${san}`] : []),
    ], { timeoutMs: 30_000 });
    const certPem = readFileSync(certFile, 'utf8');
    return identityOf(keyPem, certPem);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An identity from its PEM parts (for loading one from disk or from the store). */
export function identityOf(keyPem: string, certPem: string): TlsIdentity {
  const x = new X509Certificate(certPem);
  return { keyPem, certPem, fingerprint: fingerprintOf(x.raw), expiresAt: new Date(x.validTo).toISOString() };
}

/** Saves an identity as `<dir>/key.pem` (0600) and `<dir>/cert.pem` (0600) in a 0700 directory. */
export function saveIdentity(dir: string, identity: TlsIdentity): void {
  ensurePrivateDir(dir);
  writeFileSync(join(dir, 'key.pem'), identity.keyPem, { mode: PRIVATE_FILE_MODE });
  writeFileSync(join(dir, 'cert.pem'), identity.certPem, { mode: PRIVATE_FILE_MODE });
}

/** Loads what saveIdentity wrote, or undefined when there is none. */
export function loadIdentity(dir: string): TlsIdentity | undefined {
  try {
    return identityOf(readFileSync(join(dir, 'key.pem'), 'utf8'), readFileSync(join(dir, 'cert.pem'), 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The fingerprint of the certificate the peer of `socket` presented, or undefined when it sent none. */
export function peerFingerprint(socket: TLSSocket): string | undefined {
  const cert: PeerCertificate | undefined = socket.getPeerCertificate();
  if (!cert || !cert.raw || cert.raw.length === 0) return undefined;
  return fingerprintOf(cert.raw);
}

/**
 * `checkServerIdentity` for a client that pins: accepts the server only when its certificate is
 * exactly `fingerprint` (hostnames are not checked: the pin is stronger than a name). Node calls it
 * only once the chain verified, so pair it with `ca: [the pinned certificate]` and
 * `rejectUnauthorized: true` (a self-signed certificate is its own CA): see pinnedClientTls.
 */
export function pinServer(fingerprint: string): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const seen = cert.raw ? fingerprintOf(cert.raw) : 'none';
    return seen === fingerprint ? undefined : new PinMismatchError(fingerprint, seen);
  };
}

/** TLS options of a client that talks only to the server whose certificate is `pinnedCertPem`, showing `identity` when given (mutual TLS). */
export function pinnedClientTls(pinnedCertPem: string, identity?: TlsIdentity): ConnectionOptions {
  return {
    ca: [pinnedCertPem], rejectUnauthorized: true, checkServerIdentity: pinServer(fingerprintOf(pinnedCertPem)),
    minVersion: 'TLSv1.3',
    ...(identity ? { key: identity.keyPem, cert: identity.certPem } : {}),
  };
}

/**
 * TLS options of a server showing `identity`; with `clientCertPem`, the handshake itself refuses
 * every client but the one holding that certificate's key (check peerFingerprint too, per request).
 */
export function pinnedServerTls(identity: TlsIdentity, clientCertPem?: string): TlsOptions {
  return {
    key: identity.keyPem, cert: identity.certPem, minVersion: 'TLSv1.3',
    ...(clientCertPem ? { requestCert: true, rejectUnauthorized: true, ca: [clientCertPem] } : {}),
  };
}

/** The peer showed a certificate other than the pinned one. */
export class PinMismatchError extends Error {
  constructor(readonly expected: string, readonly seen: string) {
    super(`the peer's TLS certificate ${seen} is not the pinned ${expected}`);
    this.name = 'PinMismatchError';
  }
}
