import { randomBytes } from 'node:crypto';
import { newEnrollmentToken, parseEnrollmentToken } from '../core/enrollment-token.js';
import { StowageError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { hashToken } from '../core/token-hash.js';
import { nowIso } from '../store/json.js';
import type { Repositories } from '../store/repositories.js';
import type { Store } from '../store/store.js';
import type { HostService } from './host-service.js';

/** A fresh agent enrollment token, as `stowage host enroll` prints it (the only time it exists outside its hash). */
export interface IssuedEnrollment {
  readonly host: string;
  readonly token: string;
  readonly expiresAt: string;
  /** The API certificate pin the token carries (null: plain HTTP). */
  readonly apiFingerprint: string | null;
}

/** The role of a host agent's own token: it may report for its host and read its grants, nothing else. */
export const AGENT_ROLE = 'agent';

/** One message for every refused exchange, so a caller learns nothing about which check failed. */
function invalid(): StowageError {
  return new StowageError('ENROLLMENT_INVALID', 'the enrollment token is not valid for this host (unknown, used, expired or for another host); print a new one with `stowage host enroll HOST`', {});
}

/**
 * Host agents' credentials: a one-time enrollment token per host (its hash and expiry on the host
 * row), exchanged once for the agent's own random token, an api_tokens row with role `agent` and
 * that host's id (only its hash is kept). A new exchange replaces the host's previous credential.
 */
export class AgentCredentialService {
  constructor(
    private readonly store: Store,
    private readonly repos: Repositories,
    private readonly hosts: HostService,
    private readonly apiFingerprint: () => Promise<string | null>,
    private readonly defaultTtlMs: number,
  ) {}

  /** Issues a new enrollment token for `ref` (replacing an unused earlier one), valid for `ttlMs`. */
  async issue(ref: string, actor: string, ttlMs = this.defaultTtlMs): Promise<IssuedEnrollment> {
    const host = await this.hosts.resolve(ref);
    const fingerprint = await this.apiFingerprint();
    const { token, parsed } = newEnrollmentToken('agent', fingerprint);
    const expiresAt = new Date(Date.now() + ttlMs).toISOString();
    await this.store.transaction(async (trx) => {
      await trx.updateTable('hosts').set({ enroll_token_hash: hashToken(parsed.secret), enroll_expires_at: expiresAt, updated_at: nowIso() }).where('id', '=', host.id).execute();
      await this.repos.events.append(trx, { tenantId: host.tenant_id, actor, resourceType: 'host', resourceId: host.id, resourceName: host.name, action: 'enroll', from: host.state, to: host.state, message: `agent enrollment token issued for host ${host.name} (expires ${expiresAt})` });
    });
    return { host: host.name, token, expiresAt, apiFingerprint: fingerprint };
  }

  /**
   * Exchanges the enrollment token `text` for host `hostName`'s agent credential: single use, before
   * its expiry, only for the host it was issued for. Any failure is the same ENROLLMENT_INVALID and
   * changes nothing.
   */
  async exchange(hostName: string, text: string): Promise<{ credential: string; host: string }> {
    let secret: string;
    try {
      const parsed = parseEnrollmentToken(text);
      if (parsed.kind !== 'agent') throw invalid();
      secret = parsed.secret;
    } catch {
      throw invalid();
    }
    const credential = `stwa_${randomBytes(24).toString('base64url')}`;
    const hash = hashToken(secret);
    const host = await this.store.transaction(async (trx) => {
      const h = await this.repos.hosts.findByName(trx, hostName);
      if (!h?.enroll_token_hash || h.enroll_token_hash !== hash || !h.enroll_expires_at || Date.parse(h.enroll_expires_at) <= Date.now()) throw invalid();
      // Single use: only the exchange that clears this exact hash goes on (a concurrent one finds it gone).
      const used = await trx.updateTable('hosts').set({ enroll_token_hash: null, enroll_expires_at: null, updated_at: nowIso() })
        .where('id', '=', h.id).where('enroll_token_hash', '=', hash).executeTakeFirst();
      if (Number(used.numUpdatedRows) !== 1) throw invalid();
      await trx.deleteFrom('api_tokens').where('host_id', '=', h.id).execute();
      await trx.insertInto('api_tokens').values({
        id: newId('token'), tenant_id: h.tenant_id, name: `agent:${h.name}`, token_hash: hashToken(credential), role: AGENT_ROLE,
        created_at: nowIso(), last_used_at: null, host_id: h.id,
      }).execute();
      await this.repos.events.append(trx, { tenantId: h.tenant_id, actor: `agent:${h.name}`, resourceType: 'host', resourceId: h.id, resourceName: h.name, action: 'enroll', from: h.state, to: h.state, message: `the agent of host ${h.name} enrolled (any earlier agent credential is revoked)` });
      return h;
    });
    return { credential, host: host.name };
  }
}
