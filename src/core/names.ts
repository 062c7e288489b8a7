import { StowageError } from './errors.js';
import { ID_PREFIXES, type IdKind } from './ids.js';

/**
 * Resource names: 1–63 characters of letters, digits, `.`, `_` and `-`, starting with a letter or
 * digit, and never `..`. This keeps names safe as file names, IQN parts and CLI arguments.
 */
export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$';
const NAME_RE = new RegExp(NAME_PATTERN);

/** Throws INVALID_NAME with a message saying what is allowed. */
export function assertValidName(name: string, what = 'name'): void {
  if (!NAME_RE.test(name) || name.includes('..')) {
    throw new StowageError(
      'INVALID_NAME',
      `${what} ${JSON.stringify(name)} is not allowed: use 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit`,
      { name },
    );
  }
  // Lookups try an id before a name, so a name shaped like an id would shadow (or be shadowed by)
  // another resource: DELETE by that "name" would delete the other one.
  const kind = idKindOf(name);
  if (kind) {
    throw new StowageError('INVALID_NAME', `${what} ${JSON.stringify(name)} is not allowed: it has the shape of a ${kind} id ("${ID_PREFIXES[kind]}-" and 20 characters)`, { name });
  }
}

const ID_SHAPE_RE = /^([a-z]{2,5})-[a-z2-7]{20}$/i;

/** The resource kind whose id `value` looks like (case-insensitively), if any. */
function idKindOf(value: string): IdKind | undefined {
  const prefix = ID_SHAPE_RE.exec(value)?.[1]?.toLowerCase();
  return (Object.keys(ID_PREFIXES) as IdKind[]).find((k) => ID_PREFIXES[k] === prefix);
}

/** Tags follow the same rule as names (they end up in the same places). */
export function assertValidTags(tags: readonly string[]): void {
  for (const t of tags) assertValidName(t, 'tag');
}

/** iSCSI initiator names: `iqn.YYYY-MM.reversed.domain[:anything]`, `eui.<16 hex>` or `naa.<16|32 hex>`. */
export const INITIATOR_NAME_PATTERN = '^(iqn\\.[0-9]{4}-[0-9]{2}\\.[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[A-Za-z0-9.:_-]{1,200})?|eui\\.[0-9A-Fa-f]{16}|naa\\.([0-9A-Fa-f]{16}|[0-9A-Fa-f]{32}))$';
const INITIATOR_RE = new RegExp(INITIATOR_NAME_PATTERN);

/** Throws VALIDATION_FAILED unless `name` is a well-formed iSCSI initiator name. */
export function assertValidInitiatorName(name: string): void {
  if (!INITIATOR_RE.test(name)) {
    throw new StowageError('VALIDATION_FAILED', `initiator name ${JSON.stringify(name)} is not valid; use e.g. iqn.2024-01.com.example:host-a`, { initiatorName: name });
  }
}
