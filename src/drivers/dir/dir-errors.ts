import { StowageError } from '../../core/errors.js';
import { CommandFailedError } from '../../system/command-runner.js';

const UNAVAILABLE_ERRNOS = new Set(['ENOENT', 'ENOTDIR', 'EROFS', 'EACCES', 'EPERM', 'EIO', 'ESTALE']);

/**
 * Turns anything thrown by fs or the CommandRunner into a StowageError that says what the driver was
 * doing: lost/unwritable directory → BACKEND_UNAVAILABLE, an image lock held by another process →
 * VOLUME_IN_USE, a timeout → TIMEOUT, anything else → DRIVER_FAILED. StowageErrors pass through.
 */
export function toDriverError(err: unknown, doing: string, details: Readonly<Record<string, unknown>> = {}): StowageError {
  if (err instanceof StowageError) return err;
  if (err instanceof CommandFailedError) {
    if (err.timedOut) return new StowageError('TIMEOUT', `dir driver: ${doing}: ${err.message}`, { ...details, command: err.command }, { cause: err });
    if (/Failed to get .*lock|Is another process using the image/.test(err.stderrTail)) {
      return new StowageError('VOLUME_IN_USE', `dir driver: ${doing}: the image is open in another process (${err.stderrTail})`, { ...details, command: err.command }, { cause: err });
    }
    return new StowageError('DRIVER_FAILED', `dir driver: ${doing}: ${err.message}`, { ...details, command: err.command, exitCode: err.exitCode }, { cause: err });
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code !== undefined && UNAVAILABLE_ERRNOS.has(code)) {
    return new StowageError('BACKEND_UNAVAILABLE', `dir driver: ${doing}: ${message}`, { ...details, errno: code }, { cause: err });
  }
  if (code === 'ENOSPC') {
    return new StowageError('DRIVER_FAILED', `dir driver: ${doing}: no space left on the backend filesystem`, { ...details, errno: code }, { cause: err });
  }
  return new StowageError('DRIVER_FAILED', `dir driver: ${doing}: ${message}`, { ...details, ...(code ? { errno: code } : {}) }, { cause: err });
}

/** True when `err` is a Node fs error with errno `code`. */
export function hasErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}
