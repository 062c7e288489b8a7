/**
 * Roles and permissions: every API route declares one permission (its `config.permission`, next to
 * its schema) and the API checks it in one place (src/api/auth.ts `authorize`). A role is a set of
 * permissions; a token carries one role. An unknown role has none (fail closed).
 */

/** The roles a user may hold (an agent's credential is not a user's). */
export const USER_ROLES = ['admin', 'member', 'reader'] as const;
export type UserRole = (typeof USER_ROLES)[number];

/** What a route may need. */
export const PERMISSIONS = {
  /** The whole system: backends, nodes, hosts (register, fence, evacuate), classes' definitions, every event. */
  'system.admin': 'the whole system: backends, nodes, hosts, fencing, storage class definitions, the event log',
  /** Change its tenant's resources: volumes, snapshots, grants, attachments, migrations; placement dry-runs. */
  'tenant.write': 'create, change and delete its tenant\'s volumes, snapshots, grants, attachments and migrations',
  /** Read its tenant's resources (no secrets), its operations and the storage classes. */
  'tenant.read': 'read its tenant\'s volumes, snapshots, grants, attachments, migrations, operations and the storage classes',
  /** Read a grant's connection info, which carries its CHAP secret. */
  'grant.secrets': 'read a grant\'s connection info (its CHAP secret)',
  /** A host agent's heartbeat report (and its answer, CHAP included). */
  'agent.report': 'send a host agent\'s report',
  /** Who it is, and its own API tokens (create, list, revoke). */
  'self': 'see who it is and manage its own API tokens',
} as const;
export type Permission = keyof typeof PERMISSIONS;

/** A route reachable without a bearer token (health, OpenAPI, enrollment by a one-time token in the body). */
export const PUBLIC_ROUTE = 'public';
export type RoutePermission = Permission | typeof PUBLIC_ROUTE;

/** The roles a token may carry, each with its permissions. */
export const ROLE_PERMISSIONS = {
  admin: ['system.admin', 'tenant.write', 'tenant.read', 'grant.secrets', 'agent.report', 'self'],
  member: ['tenant.write', 'tenant.read', 'grant.secrets', 'self'],
  reader: ['tenant.read', 'self'],
  /** A host agent's credential; src/api/auth.ts `authorizeAgent` further limits it to its own host. */
  agent: ['agent.report', 'grant.secrets'],
} as const satisfies Record<string, readonly Permission[]>;
export type Role = keyof typeof ROLE_PERMISSIONS;

export function isPermission(p: unknown): p is Permission {
  return typeof p === 'string' && Object.hasOwn(PERMISSIONS, p);
}

export function isRole(r: unknown): r is Role {
  return typeof r === 'string' && Object.hasOwn(ROLE_PERMISSIONS, r);
}

/** The permissions of a role; none for a role this version does not know. */
export function permissionsOf(role: string): readonly Permission[] {
  return isRole(role) ? ROLE_PERMISSIONS[role] : [];
}

/** Whether a role has a permission. */
export function roleHas(role: string, p: Permission): boolean {
  return permissionsOf(role).includes(p);
}

/** The roles that have a permission (for error messages). */
export function rolesWith(p: Permission): Role[] {
  return (Object.keys(ROLE_PERMISSIONS) as Role[]).filter((r) => roleHas(r, p));
}
