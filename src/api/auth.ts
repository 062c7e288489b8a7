import type { FastifyRequest } from 'fastify';
import { StowageError } from '../core/errors.js';
import { PERMISSIONS, PUBLIC_ROUTE, ROLE_PERMISSIONS, isPermission, isRole, roleHas, rolesWith, type RoutePermission } from '../core/permissions.js';
import { hashToken } from '../core/token-hash.js';
import { AuthFailureLimiter } from './auth-limiter.js';
import type { TenantService } from '../tenants/tenant-service.js';
import { TENANT_RESOURCE_TYPES, type Viewer } from '../tenants/visibility.js';

/** Who made a request: the actor in events (`user/token`), tenant, role, and the token and user behind it. */
export interface Principal {
  readonly actor: string;
  readonly tenantId: string;
  readonly role: string;
  readonly tokenId: string;
  /** Null for an agent's credential and a token made before users existed. */
  readonly userId: string | null;
  /** For a host agent's token (role `agent`): the one host it acts for. */
  readonly host?: { readonly id: string; readonly name: string };
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
  interface FastifyContextConfig {
    /** The permission a route needs (src/core/permissions.ts), or `public` outside the bearer-auth scope. Every route declares one. */
    permission?: RoutePermission;
  }
}

/**
 * Refuses (FORBIDDEN) a request whose token's role lacks the permission its route declares. An
 * unknown role has no permission at all; so has a route without a declared one (buildApp refuses to
 * start with such a route, see RoutePermissionCheck).
 */
export function authorize(req: FastifyRequest, p: Principal): void {
  const needed = req.routeOptions.config.permission;
  if (!isPermission(needed)) {
    throw new StowageError('FORBIDDEN', `${req.method} ${req.routeOptions.url ?? ''} declares no permission, so no token may call it`, {});
  }
  if (!isRole(p.role)) {
    throw new StowageError('FORBIDDEN', `this token's role is not one this server knows (${Object.keys(ROLE_PERMISSIONS).join(', ')}), so it may do nothing; this needs the permission ${needed}, which an admin can grant with a token of role ${rolesWith(needed).join(' or ')}`, { permission: needed });
  }
  if (!roleHas(p.role, needed)) {
    throw new StowageError('FORBIDDEN', `this needs the permission ${needed} (${PERMISSIONS[needed]}), which the role ${p.role} does not have; an admin can grant it with a token of role ${rolesWith(needed).join(' or ')}`, { permission: needed, role: p.role });
  }
}

/**
 * The startup check behind "every route declares its permission": `record` sees every route (an
 * onRoute hook of the root), `markAuthenticated` the routes of the bearer-auth scope, and `verify`
 * throws listing each route that declares none, one that is not a permission, or `public` inside the
 * bearer-auth scope (or a permission outside it, where nothing would check it).
 */
export class RoutePermissionCheck {
  private readonly routes: { method: string; url: string; permission: unknown }[] = [];
  private readonly authenticated = new Set<string>();

  record(route: { method: string | string[]; url: string; config?: unknown }): void {
    const permission = (route.config as { permission?: unknown } | undefined)?.permission;
    for (const method of [route.method].flat()) this.routes.push({ method, url: route.url, permission });
  }

  markAuthenticated(route: { method: string | string[]; url: string }): void {
    for (const method of [route.method].flat()) this.authenticated.add(`${method} ${route.url}`);
  }

  verify(): void {
    const bad: string[] = [];
    for (const r of this.routes) {
      const key = `${r.method} ${r.url}`;
      const ok = this.authenticated.has(key) ? isPermission(r.permission) : r.permission === PUBLIC_ROUTE;
      if (!ok) bad.push(`${key} (permission: ${r.permission === undefined ? 'none' : JSON.stringify(r.permission)}${this.authenticated.has(key) ? '' : ', outside the bearer-auth scope'})`);
    }
    if (bad.length > 0) {
      throw new Error(`every route must declare config.permission (one of ${Object.keys(PERMISSIONS).join(', ')}; "${PUBLIC_ROUTE}" only outside the bearer-auth scope): ${bad.join('; ')}`);
    }
  }
}

/**
 * The routes a host agent's credential may call, each with the route parameter that must name its
 * own host (by name or id): its heartbeat report (which answers with its desired set, CHAP
 * included) and the connection info of a grant to its host. Nothing else: no listing, no admin.
 */
const AGENT_ROUTES: ReadonlyMap<string, string> = new Map([
  ['POST /v1/agents/:ref/report', 'ref'],
  ['GET /v1/volumes/:ref/grants/:host/connection', 'host'],
]);

/** Refuses (FORBIDDEN) an agent's request that is not one of its own host's agent routes. */
export function authorizeAgent(req: FastifyRequest, p: Principal): void {
  const param = AGENT_ROUTES.get(`${req.method} ${req.routeOptions.url ?? ''}`);
  const named = param ? (req.params as Record<string, string | undefined>)[param] : undefined;
  if (p.host && named !== undefined && (named === p.host.name || named === p.host.id)) return;
  throw new StowageError('FORBIDDEN', 'an agent credential may only report for its own host and read its own grants\' connection info', {});
}

/**
 * Headers other systems use to pick a tenant, project or organization (OpenStack's X-Project-Id and
 * X-Auth-Project-Id, Cortex/Loki/Mimir's X-Scope-OrgID, Grafana's X-Grafana-Org-Id, and the
 * underscore spellings Node accepts too). The tenant of a request is its token's, always: a request
 * carrying one of these is refused rather than silently acting elsewhere.
 */
const TENANT_OVERRIDE_HEADER = /^x[-_]((stowage|openstack|auth|grafana)[-_])?(tenant|project|org|organization)([-_](id|name))?$|^x-scope-orgid$/i;

/** Refuses (VALIDATION_FAILED) a request that tries to name its tenant in a header. */
export function refuseTenantOverride(req: FastifyRequest): void {
  const header = Object.keys(req.headers).find((h) => TENANT_OVERRIDE_HEADER.test(h));
  if (header !== undefined) {
    throw new StowageError('VALIDATION_FAILED', `the header ${header} is refused: a request acts in its token's tenant, always; use a token of the tenant you mean`, { header });
  }
}

/** How long a checked token is trusted without a store read: a revoked one stops working within this on other replicas. */
const AUTH_CACHE_MS = 5_000;
/** A token's last use is written at most this often (one write per token, not per request). */
const TOUCH_EVERY_MS = 60_000;

/** Checks bearer tokens against their stored hashes (cached per hash for seconds, except agents'). */
export class Authenticator {
  private readonly cache = new Map<string, { p: Principal; until: number }>();
  private readonly touched = new Map<string, number>();

  constructor(private readonly tenants: TenantService, private readonly limiter: AuthFailureLimiter = new AuthFailureLimiter()) {}

  /** Forgets every cached token (after a revocation or a deleted user here: it takes effect at once on this replica). */
  forgetAll(): void {
    this.cache.clear();
  }

  async authenticate(req: FastifyRequest): Promise<Principal> {
    const header = req.headers.authorization;
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m?.[1]) {
      throw new StowageError('UNAUTHORIZED', 'missing bearer token: send "Authorization: Bearer <token>" (the CLI reads it from its config file)', {});
    }
    this.limiter.check(req.ip);
    const h = hashToken(m[1]);
    const hit = this.cache.get(h);
    if (hit && hit.until > Date.now()) return hit.p;
    const holder = await this.tenants.holderOf(h);
    if (!holder) {
      this.limiter.failed(req.ip);
      throw new StowageError('UNAUTHORIZED', 'invalid API token (unknown, revoked or expired): ask an admin for a new one, then `stowage login`', {});
    }
    const p: Principal = {
      actor: holder.actor, tenantId: holder.tenantId, role: holder.role, tokenId: holder.tokenId, userId: holder.user?.id ?? null, ...(holder.host ? { host: holder.host } : {}),
    };
    await this.touch(p.tokenId);
    // An agent's credential is looked up every time: re-enrolling or deleting its host revokes it at
    // once, on every replica (one indexed read per heartbeat).
    if (p.role !== 'agent') {
      if (this.cache.size > 10_000) this.cache.clear();
      // Never past the token's expiry: an expiring token stops at its time, not up to AUTH_CACHE_MS later.
      const expiresMs = holder.expiresAt !== null ? Date.parse(holder.expiresAt) : Number.POSITIVE_INFINITY;
      this.cache.set(h, { p, until: Math.min(Date.now() + AUTH_CACHE_MS, expiresMs) });
    }
    if (p.role === 'agent') authorizeAgent(req, p);
    return p;
  }

  /** Records a token's use, at most once a minute per token and replica; a failed write never fails the request. */
  private async touch(tokenId: string): Promise<void> {
    const now = Date.now();
    if ((this.touched.get(tokenId) ?? 0) > now - TOUCH_EVERY_MS) return;
    if (this.touched.size > 10_000) this.touched.clear();
    this.touched.set(tokenId, now);
    try {
      await this.tenants.touch(tokenId);
    } catch {
      // best effort: last use is a hint for operators, not a control
    }
  }
}

/** How `p` sees backends, classes and hosts restricted to some tenants: admins see all of them and to whom; others only what their tenant may use. */
export function viewerOf(p: Principal): Viewer {
  return { tenantId: p.tenantId, admin: roleHas(p.role, 'system.admin') };
}

/**
 * The tenant a list is of: the principal's own, or every tenant's (null) for an admin asking
 * `allTenants`; anyone else asking for it is refused, so a list never quietly shows less than asked.
 */
export function listTenant(p: Principal, allTenants: boolean | undefined): string | null {
  if (allTenants !== true) return p.tenantId;
  if (!roleHas(p.role, 'system.admin')) throw new StowageError('FORBIDDEN', 'only admins list every tenant\'s resources (allTenants); leave it out to list your own', { role: p.role });
  return null;
}

/** What a non-admin's events and operations are limited to: its tenant's own resources, never the system's. */
export function resourceTypesFor(p: Principal): readonly string[] | undefined {
  return roleHas(p.role, 'system.admin') ? undefined : TENANT_RESOURCE_TYPES;
}
