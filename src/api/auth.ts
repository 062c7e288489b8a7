import type { FastifyRequest } from 'fastify';
import { StowageError } from '../core/errors.js';
import { TenantRepository, hashToken } from '../store/tenant-repository.js';
import type { Store } from '../store/store.js';

/** Who made a request: the token's name (the actor in events), tenant and role. */
export interface Principal {
  readonly actor: string;
  readonly tenantId: string;
  readonly role: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}

/** Checks bearer tokens against their stored hashes (cached per hash for a minute). */
export class Authenticator {
  private readonly repo = new TenantRepository();
  private readonly cache = new Map<string, { p: Principal; until: number }>();

  constructor(private readonly store: Store) {}

  async authenticate(req: FastifyRequest): Promise<Principal> {
    const header = req.headers.authorization;
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m?.[1]) {
      throw new StowageError('UNAUTHORIZED', 'missing bearer token: send "Authorization: Bearer <token>" (the CLI reads it from its config file)', {});
    }
    const h = hashToken(m[1]);
    const hit = this.cache.get(h);
    if (hit && hit.until > Date.now()) return hit.p;
    const row = await this.repo.findTokenByHash(this.store.db, h);
    if (!row) throw new StowageError('UNAUTHORIZED', 'invalid API token', {});
    const p: Principal = { actor: row.name, tenantId: row.tenant_id, role: row.role };
    this.cache.set(h, { p, until: Date.now() + 60_000 });
    return p;
  }
}
