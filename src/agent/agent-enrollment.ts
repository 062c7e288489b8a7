import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnrollmentToken } from '../core/enrollment-token.js';
import { StowageError } from '../core/errors.js';
import { pinnedFetch, probeCertificate } from '../system/pinned-fetch.js';
import { ensurePrivateDir, PRIVATE_FILE_MODE } from '../system/private-files.js';

/** What an enrolled agent keeps in its state dir (0600): its own credential and the API's pin. */
export interface AgentState {
  readonly api: string;
  readonly host: string;
  readonly credential: string;
  /** `sha256:…` of the API certificate, or null for a plain-HTTP API. */
  readonly apiFingerprint: string | null;
  readonly apiCertPem: string | null;
}

/** Default directory of the agent's credential. */
export const DEFAULT_AGENT_STATE_DIR = '/var/lib/stowage/agent';

const stateFile = (dir: string): string => join(dir, 'agent.json');

/** The fetch an agent uses to reach the API of `state`: pinned for HTTPS, global fetch for plain HTTP. */
export function agentFetch(state: Pick<AgentState, 'api' | 'apiFingerprint' | 'apiCertPem'>): typeof fetch {
  if (!state.api.startsWith('https:')) return fetch;
  if (!state.apiFingerprint) throw new StowageError('VALIDATION_FAILED', `no pinned certificate for ${state.api}: enroll again (stowage host enroll HOST prints a token)`, {});
  return pinnedFetch({ fingerprint: state.apiFingerprint, certPem: state.apiCertPem ?? undefined });
}

function loadState(dir: string): AgentState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(dir), 'utf8')) as AgentState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StowageError('VALIDATION_FAILED', `cannot read the agent state ${stateFile(dir)}: ${(err as Error).message}`, {});
  }
}

function saveState(dir: string, s: AgentState): void {
  ensurePrivateDir(dir);
  writeFileSync(stateFile(dir), `${JSON.stringify(s, null, 2)}\n`, { mode: PRIVATE_FILE_MODE });
  chmodSync(stateFile(dir), PRIVATE_FILE_MODE);
}

/**
 * The agent's credential: with an enrollment token, enroll (check the API's certificate against
 * the pin the token carries before sending anything, exchange the token once for the agent's own
 * credential, keep it with the pin in `stateDir`); without one, the credential saved by an earlier
 * enrollment. The enrollment token and the credential are never logged.
 */
export async function agentCredential(o: { host: string; apiUrl?: string | undefined; enrollToken?: string | undefined; stateDir: string }): Promise<AgentState> {
  if (!o.enrollToken) {
    const saved = loadState(o.stateDir);
    if (!saved) throw new StowageError('UNAUTHORIZED', `this agent is not enrolled (no credential in ${o.stateDir}): pass --enroll TOKEN or --enroll-file FILE (\`stowage host enroll ${o.host}\` prints one)`, {});
    if (saved.host !== o.host) throw new StowageError('VALIDATION_FAILED', `the credential in ${o.stateDir} is host ${saved.host}'s, not ${o.host}'s: use another --state-dir or enroll again`, {});
    return o.apiUrl && o.apiUrl.replace(/\/+$/, '') !== saved.api ? { ...saved, api: o.apiUrl.replace(/\/+$/, '') } : saved;
  }
  if (!o.apiUrl) throw new StowageError('VALIDATION_FAILED', 'enrolling needs the API address: pass --api https://HOST:8750', {});
  const api = o.apiUrl.replace(/\/+$/, '');
  const token = parseEnrollmentToken(o.enrollToken);
  if (token.kind !== 'agent') throw new StowageError('ENROLLMENT_INVALID', 'that is a storage node\'s enrollment token, not an agent\'s (`stowage host enroll HOST` prints one)', {});
  let pin: { fingerprint: string; certPem: string } | null = null;
  if (token.apiFingerprint) {
    if (!api.startsWith('https:')) throw new StowageError('VALIDATION_FAILED', `the enrollment token pins an HTTPS API; use --api https://… (got ${api})`, {});
    const seen = await probeCertificate(api).catch((err: unknown) => {
      throw new StowageError('BACKEND_UNAVAILABLE', `cannot reach the API at ${api}: ${(err as Error).message}`, {});
    });
    if (seen.fingerprint !== token.apiFingerprint) {
      throw new StowageError('ENROLLMENT_INVALID', `the API at ${api} shows certificate ${seen.fingerprint}, not the ${token.apiFingerprint} the enrollment token pins: wrong --api, or someone in between; nothing was sent`, {});
    }
    pin = seen;
  } else if (api.startsWith('https:')) {
    throw new StowageError('VALIDATION_FAILED', `the enrollment token is for a plain-HTTP API, but --api is ${api}`, {});
  }
  const f = agentFetch({ api, apiFingerprint: pin?.fingerprint ?? null, apiCertPem: pin?.certPem ?? null });
  const res = await f(`${api}/v1/hosts/${encodeURIComponent(o.host)}/agent-credential`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: o.enrollToken.trim() }), signal: AbortSignal.timeout(30_000),
  });
  const body = await res.json().catch(() => ({})) as { credential?: string; code?: string; message?: string };
  if (!res.ok || typeof body.credential !== 'string') {
    throw new StowageError(res.status === 401 ? 'ENROLLMENT_INVALID' : 'BACKEND_UNAVAILABLE', `enrollment refused by ${api}: ${body.code ?? String(res.status)} ${body.message ?? ''}`.trim(), {});
  }
  const state: AgentState = { api, host: o.host, credential: body.credential, apiFingerprint: pin?.fingerprint ?? null, apiCertPem: pin?.certPem ?? null };
  saveState(o.stateDir, state);
  return state;
}
