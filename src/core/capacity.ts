/** The inputs of the one capacity function every filter and weigher uses (bytes). */
export interface CapacityInputs {
  readonly totalBytes: number;
  readonly overcommitRatio: number;
  readonly reservedPercent: number;
  readonly provisionedBytes: number;
  readonly claimedBytes: number;
}

/**
 * Usable capacity: total × overcommit ratio − provisioned − claimed − reserve, where the reserve is
 * reservedPercent of the raw total. May be negative (an overfull backend). Filters and weighers
 * all call this, so they can never disagree about how much room a backend has.
 */
export function usableBytes(c: CapacityInputs): number {
  const reserve = Math.ceil((c.totalBytes * c.reservedPercent) / 100);
  return Math.floor(c.totalBytes * c.overcommitRatio) - c.provisionedBytes - c.claimedBytes - reserve;
}
