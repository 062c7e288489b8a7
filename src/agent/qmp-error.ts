import { StowageError } from '../core/errors.js';
import { redact } from '../system/command-runner.js';

/**
 * A command QEMU answered with `{"error": {"class", "desc"}}`. It is a StowageError with code
 * DRIVER_FAILED so it crosses layers like any other; `qmpClass` and `desc` keep QEMU's own words
 * (with every secret the caller named replaced by `***`).
 */
export class QmpError extends StowageError {
  /** QEMU's error class, e.g. `GenericError` or `DeviceNotFound`. */
  readonly qmpClass: string;
  /** QEMU's human-readable description, redacted. */
  readonly desc: string;
  /** The QMP command that failed. */
  readonly command: string;

  constructor(command: string, qmpClass: string, desc: string, secrets: readonly string[] = []) {
    const safeDesc = redact(desc, secrets);
    super('DRIVER_FAILED', `QMP ${command} failed: ${qmpClass}: ${safeDesc}`, { command, qmpClass, desc: safeDesc });
    this.name = 'QmpError';
    this.qmpClass = qmpClass;
    this.desc = safeDesc;
    this.command = command;
  }
}

/** True when `err` is a QmpError of the given class (and, optionally, with a description matching `descRe`). */
export function isQmpError(err: unknown, qmpClass?: string, descRe?: RegExp): err is QmpError {
  if (!(err instanceof QmpError)) return false;
  if (qmpClass !== undefined && err.qmpClass !== qmpClass) return false;
  return descRe === undefined || descRe.test(err.desc);
}
