/**
 * Capability names a driver may report; admin overrides and storage classes use the same names.
 * They are domain words (placement and classes reason with them), so they live in core and the
 * driver SDK imports them from here, keeping core free of imports from outer layers.
 */
export const CAPABILITIES = [
  'thin',
  'resize',
  'resize.online',
  'snapshot',
  'snapshot.offload',
  'clone',
  'clone.offload',
  'revert',
  'access.initiator',
  'access.chap',
  'access.address',
  'multiattach',
  'quota',
  'format.raw',
  'format.qcow2',
] as const;
/** One capability name. */
export type Capability = (typeof CAPABILITIES)[number];
