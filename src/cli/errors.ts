/**
 * Errors the CLI prints and turns into exit codes: `code: message` on stderr, exit 1 for failures
 * reported by the API or an operation, exit 2 for usage errors caught before any request.
 */
export class CliError extends Error {
  /** The API's stable error code, or null for local conditions that have none (printed bare). */
  readonly code: string | null;
  readonly details: Readonly<Record<string, unknown>>;
  readonly exitCode: number;
  /** Extra lines printed after the error to say what to do next. */
  readonly hints: readonly string[];

  constructor(code: string | null, message: string, opts: { details?: Readonly<Record<string, unknown>>; exitCode?: number; hints?: readonly string[]; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CliError';
    this.code = code;
    this.details = opts.details ?? {};
    this.exitCode = opts.exitCode ?? 1;
    this.hints = opts.hints ?? [];
  }
}

/** An error answer of the API (`{ code, message, details }`) with its HTTP status. */
export class ApiError extends CliError {
  readonly status: number;

  constructor(status: number, code: string, message: string, details: Readonly<Record<string, unknown>> = {}, hints: readonly string[] = []) {
    super(code, message, { details, hints });
    this.name = 'ApiError';
    this.status = status;
  }
}

/** Exit code of usage errors (bad flags, bad sizes, missing confirmation). */
export const USAGE_EXIT_CODE = 2;

/** A usage error: printed like an API error, exits 2, and no request was made. */
export function usageError(code: string, message: string, hints: readonly string[] = []): CliError {
  return new CliError(code, message, { exitCode: USAGE_EXIT_CODE, hints });
}

/** Formats an error the way every command prints it: `code: message` (or the bare message). */
export function formatCliError(err: CliError): string {
  const head = err.code ? `${err.code}: ${err.message}` : err.message;
  return [head, ...err.hints.map((h) => `  ${h}`)].join('\n');
}
