import type { FastifyRequest } from 'fastify';
import { StowageError } from '../core/errors.js';
import { hashToken } from '../core/token-hash.js';
import type { TenantService } from '../tenants/tenant-service.js';

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
  private readonly cache = new Map<string, { p: Principal; until: number }>();

  constructor(private readonly tenants: TenantService) {}

  async authenticate(req: FastifyRequest): Promise<Principal> {
    const header = req.headers.authorization;
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m?.[1]) {
      throw new StowageError('UNAUTHORIZED', 'missing bearer token: send "Authorization: Bearer <token>" (the CLI reads it from its config file)', {});
    }
    const h = hashToken(m[1]);
    const hit = this.cache.get(h);
    if (hit && hit.until > Date.now()) return hit.p;
    const holder = await this.tenants.holderOf(h);
    if (!holder) throw new StowageError('UNAUTHORIZED', 'invalid API token', {});
    const p: Principal = { actor: holder.actor, tenantId: holder.tenantId, role: holder.role };
    this.cache.set(h, { p, until: Date.now() + 60_000 });
    return p;
  }
}
