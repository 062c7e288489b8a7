import { randomBytes } from 'node:crypto';
import { StowageError } from './errors.js';

/**
 * A one-time enrollment token, for a storage node (`stowage node run --enroll`) or a host agent
 * (`stowage agent --enroll`). It carries the pin of the API's TLS certificate, so the process that
 * enrolls trusts the API it was told about and no other, before it holds any key (as a kubeadm join
 * token carries the CA hash): `stw1.<kind>.<secret>.<api pin>`, the pin being the 64 hex digits of
 * the certificate's sha256, or `plain` when the API serves plain HTTP on loopback. The store keeps
 * only hashToken(secret).
 */
export interface EnrollmentToken {
  readonly kind: 'node' | 'agent';
  /** What the control plane checks (hashed at rest). */
  readonly secret: string;
  /** `sha256:<hex>` of the API's certificate, or null for a plain-HTTP API on loopback. */
  readonly apiFingerprint: string | null;
}

/** A fresh token of `kind` for an API with certificate `apiFingerprint` (null: plain HTTP). */
export function newEnrollmentToken(kind: EnrollmentToken['kind'], apiFingerprint: string | null): { token: string; parsed: EnrollmentToken } {
  const parsed = { kind, secret: randomBytes(24).toString('base64url'), apiFingerprint };
  return { token: formatEnrollmentToken(parsed), parsed };
}

export function formatEnrollmentToken(t: EnrollmentToken): string {
  return `stw1.${t.kind}.${t.secret}.${t.apiFingerprint ? t.apiFingerprint.replace(/^sha256:/, '') : 'plain'}`;
}

/** Parses a token as typed; throws ENROLLMENT_INVALID (never echoing the secret) when it has another shape. */
export function parseEnrollmentToken(text: string): EnrollmentToken {
  const m = /^stw1\.(node|agent)\.([A-Za-z0-9_-]{16,128})\.([0-9a-f]{64}|plain)$/.exec(text.trim());
  if (!m?.[1] || !m[2] || !m[3]) throw new StowageError('ENROLLMENT_INVALID', 'that is not an enrollment token (expected stw1.<node|agent>.…, as `stowage node create` or `stowage host enroll` printed it)', {});
  return { kind: m[1] as EnrollmentToken['kind'], secret: m[2], apiFingerprint: m[3] === 'plain' ? null : `sha256:${m[3]}` };
}
