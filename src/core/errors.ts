/**
 * One error base with stable codes. Every code maps to exactly one HTTP status; a retired code is
 * never reused. The API error handler and the CLI both read `code`, `message` and `details`.
 */
export const ERROR_CODES = {
  VALIDATION_FAILED: 400,
  INVALID_NAME: 400,
  INVALID_SIZE: 400,
  INVALID_DRIVER_URI: 400,
  UNKNOWN_DRIVER: 400,
  UNAUTHORIZED: 401,
  /** An enrollment token that is unknown, used, expired or for another node/host. */
  ENROLLMENT_INVALID: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  BACKEND_NOT_FOUND: 404,
  VOLUME_NOT_FOUND: 404,
  OPERATION_NOT_FOUND: 404,
  CLASS_NOT_FOUND: 404,
  HOST_NOT_FOUND: 404,
  SNAPSHOT_NOT_FOUND: 404,
  ATTACHMENT_NOT_FOUND: 404,
  TENANT_NOT_FOUND: 404,
  USER_NOT_FOUND: 404,
  TOKEN_NOT_FOUND: 404,
  NODE_NOT_FOUND: 404,
  NAME_TAKEN: 409,
  INVALID_STATE: 409,
  BACKEND_IN_USE: 409,
  BACKEND_PATH_OVERLAP: 409,
  CLASS_IN_USE: 409,
  HOST_IN_USE: 409,
  VOLUME_IN_USE: 409,
  IDEMPOTENCY_CONFLICT: 409,
  HOST_NOT_FENCED: 409,
  NODE_IN_USE: 409,
  /** A tenant that still owns resources: details.counts says how many of each (delete with cascade). */
  TENANT_NOT_EMPTY: 409,
  /** A node answered a call made under an epoch older than its current one (a late answer from before a restart). */
  STALE_EPOCH: 409,
  /** The node a backend runs on was deleted: operations that need it fail and compensate. */
  NODE_GONE: 410,
  SHRINK_NOT_SUPPORTED: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  NO_VALID_BACKEND: 422,
  /** Too many failed authentications from one address: details.retryAfterSeconds (also the Retry-After header). */
  RATE_LIMITED: 429,
  CAPABILITY_MISSING: 422,
  /** A create or grow beyond a tenant's quota: details name the quota, its limit and the usage. */
  QUOTA_EXCEEDED: 422,
  BACKEND_UNAVAILABLE: 503,
  /** The storage node a backend runs on does not answer (transient: operations wait for it). */
  NODE_UNREACHABLE: 503,
  DRIVER_FAILED: 502,
  TIMEOUT: 504,
  INTERNAL: 500,
} as const;

/** A stable machine-readable error code. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Extra, structured context for an error. Never holds secrets. */
export type ErrorDetails = Readonly<Record<string, unknown>>;

/** The single error type that crosses layers; maps 1:1 to `{ code, message, details }` on the wire. */
export class StowageError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StowageError';
    this.code = code;
    this.details = details;
  }

  /** HTTP status for this error's code. */
  get httpStatus(): number {
    return ERROR_CODES[this.code];
  }

  /** Wire form used by the API and by the operation journal. */
  toJSON(): { code: ErrorCode; message: string; details: ErrorDetails } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** True when `value` is a known error code. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** Normalizes anything thrown into a StowageError (unknown errors become INTERNAL). */
export function toStowageError(err: unknown): StowageError {
  if (err instanceof StowageError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new StowageError('INTERNAL', message, {}, { cause: err });
}

/** Compile-time exhaustiveness check for switches over unions. */
export function assertNever(value: never, what = 'value'): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(value)}`);
}
