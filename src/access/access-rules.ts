import type { AccessMode } from '../core/states.js';

/**
 * The read-write exclusivity rule, in one place: a volume that is not multi-attach is read-write
 * for one host at a time. Of the other hosts' `holders` (grants or attachments), returns those that
 * conflict with a new holder in `mode`: every one when the new holder wants read-write, else the
 * read-write ones (read-only holders may share). A multi-attach volume conflicts with nobody.
 */
export function exclusivityConflicts<T extends { readonly mode: AccessMode }>(holders: readonly T[], mode: AccessMode, multiattach: boolean): T[] {
  if (multiattach) return [];
  return holders.filter((h) => mode === 'rw' || h.mode === 'rw');
}
