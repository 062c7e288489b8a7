/** Parses a JSON column, returning `fallback` for null. */
export function readJson<T>(text: string | null, fallback: T): T {
  if (text === null) return fallback;
  return JSON.parse(text) as T;
}

/** Serializes a value for a JSON column. */
export function writeJson(value: unknown): string {
  return JSON.stringify(value);
}

/**
 * The LIKE pattern matching a JSON array of ids (a `tenants` column) that holds `id`: ids hold no
 * LIKE wildcard and no quote, so the quoted id matches exactly one element.
 */
export function jsonListHolding(id: string): string {
  return `%${JSON.stringify(id)}%`;
}

/** The current time as the ISO text every timestamp column holds. */
export function nowIso(): string {
  return new Date().toISOString();
}

/** True when a database error is a unique-constraint violation (SQLite or PostgreSQL). */
export function isUniqueViolation(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; message?: unknown };
  return e.code === '23505' || e.code === 'SQLITE_CONSTRAINT_UNIQUE' || (typeof e.message === 'string' && e.message.includes('UNIQUE constraint failed'));
}
