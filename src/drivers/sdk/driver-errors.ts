import { StowageError, toStowageError } from '../../core/errors.js';
import { CommandFailedError } from '../../system/command-runner.js';

/**
 * What a driver call's failure means to the core: a command that failed is DRIVER_FAILED (TIMEOUT
 * when it ran out of time) with the redacted command line and exit code; a StowageError keeps its
 * code; anything else is INTERNAL. The operation engine and a node answering a remote call both
 * map through this, so a backend's errors read the same wherever its driver ran.
 */
export function toDriverError(err: unknown): StowageError {
  if (err instanceof CommandFailedError) {
    return new StowageError(err.timedOut ? 'TIMEOUT' : 'DRIVER_FAILED', err.message, { command: err.command, exitCode: err.exitCode }, { cause: err });
  }
  return toStowageError(err);
}
