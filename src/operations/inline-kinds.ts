/**
 * Every operation kind recorded inline: one transaction changes the resource and journals an
 * already-succeeded operation (no steps, no worker). `OperationEngine.record` accepts only these,
 * so a new inline mutation must be named here, and the kill -9 matrix's coverage test reads this
 * list to demand a crash cell for each (test/recovery/inline-tier.ts).
 */
export const INLINE_KINDS = [
  'backend.create', 'backend.update', 'backend.enable', 'backend.disable', 'backend.delete',
  'host.create', 'host.update', 'host.delete', 'host.unfence',
  'class.create', 'class.update', 'class.delete',
  'node.create', 'node.drain', 'node.resume', 'node.rekey', 'node.revoke', 'node.delete',
] as const;

/** One of the inline-recorded operation kinds. */
export type InlineKind = (typeof INLINE_KINDS)[number];

/** Failpoint names around an inline record: `before` pauses inside the transaction just before it commits, `after` right after it did. */
export function inlineFailpoint(kind: InlineKind, position: 'before' | 'after'): string {
  return `${kind}/record:${position}`;
}
