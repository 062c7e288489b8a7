/** The run state of a VM as `query-status` reports it (`running`, `prelaunch`, `paused`, `inmigrate`, `postmigrate`, …). */
export interface VmStatus {
  readonly status: string;
  readonly running: boolean;
}

/** Migration states after which `query-migrate` will not change any more. */
export const MIGRATION_FINAL_STATES = ['completed', 'failed', 'cancelled'] as const;

/** The fields of `query-migrate` the agent reads. `status` is `none` before any migration. */
export interface MigrationInfo {
  readonly status: string;
  readonly totalTimeMs: number | undefined;
  readonly downtimeMs: number | undefined;
  /** QEMU's reason when `status` is `failed`. */
  readonly errorDesc: string | undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses the `return` of `query-status`. */
export function parseVmStatus(value: unknown): VmStatus {
  const v = isRecord(value) ? value : {};
  return { status: typeof v.status === 'string' ? v.status : 'unknown', running: v.running === true };
}

/** Parses the `return` of `query-migrate`. */
export function parseMigrationInfo(value: unknown): MigrationInfo {
  const v = isRecord(value) ? value : {};
  const n = (x: unknown): number | undefined => (typeof x === 'number' ? x : undefined);
  return {
    status: typeof v.status === 'string' ? v.status : 'none',
    totalTimeMs: n(v['total-time']),
    downtimeMs: n(v.downtime),
    errorDesc: typeof v['error-desc'] === 'string' ? v['error-desc'] : undefined,
  };
}

/** True once `status` is completed, failed or cancelled. */
export function isMigrationFinal(status: string): boolean {
  return (MIGRATION_FINAL_STATES as readonly string[]).includes(status);
}
