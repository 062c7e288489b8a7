/**
 * QMP wire format as pure functions: newline-delimited JSON objects, one per line. A message is a
 * greeting, a command reply (`return` or `error`, echoing our `id`) or an asynchronous event that
 * may arrive between any two replies.
 */

/** The version block of the greeting QEMU sends on connect. */
export interface QmpGreeting {
  readonly kind: 'greeting';
  readonly version: { readonly major: number; readonly minor: number; readonly micro: number };
  readonly capabilities: readonly string[];
}

/** A successful command reply. */
export interface QmpReturn {
  readonly kind: 'return';
  readonly id: string | undefined;
  readonly value: unknown;
}

/** A failed command reply: QEMU's error class (e.g. `GenericError`, `DeviceNotFound`) and text. */
export interface QmpErrorReply {
  readonly kind: 'error';
  readonly id: string | undefined;
  readonly errorClass: string;
  readonly desc: string;
}

/** An asynchronous event; `timestampMs` is QEMU's wall-clock stamp in milliseconds. */
export interface QmpEvent {
  readonly kind: 'event';
  readonly event: string;
  readonly data: Readonly<Record<string, unknown>>;
  readonly timestampMs: number;
}

/** Anything QEMU can send on the monitor. */
export type QmpMessage = QmpGreeting | QmpReturn | QmpErrorReply | QmpEvent;

/** A line that is not valid QMP (kept for diagnostics; never contains our secrets). */
export class QmpProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QmpProtocolError';
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function num(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function idOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}

/** Splits buffered socket text into complete lines and the unfinished rest (blank lines dropped). */
export function splitLines(buffer: string): { lines: string[]; rest: string } {
  const parts = buffer.split('\n');
  const rest = parts.pop() ?? '';
  return { lines: parts.map((l) => l.trim()).filter((l) => l.length > 0), rest };
}

/** Parses one QMP line; throws QmpProtocolError on anything that is not a known message shape. */
export function parseQmpLine(line: string): QmpMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    throw new QmpProtocolError(`QMP sent a line that is not JSON (${String(line.length)} chars)`);
  }
  if (!isRecord(raw)) throw new QmpProtocolError('QMP sent a JSON value that is not an object');
  if (isRecord(raw.QMP)) {
    const version = isRecord(raw.QMP.version) && isRecord(raw.QMP.version.qemu) ? raw.QMP.version.qemu : {};
    const caps = Array.isArray(raw.QMP.capabilities) ? raw.QMP.capabilities.filter((c): c is string => typeof c === 'string') : [];
    return { kind: 'greeting', version: { major: num(version.major), minor: num(version.minor), micro: num(version.micro) }, capabilities: caps };
  }
  if (typeof raw.event === 'string') {
    const ts = isRecord(raw.timestamp) ? raw.timestamp : {};
    return {
      kind: 'event',
      event: raw.event,
      data: isRecord(raw.data) ? raw.data : {},
      timestampMs: num(ts.seconds) * 1000 + Math.floor(num(ts.microseconds) / 1000),
    };
  }
  if (Object.hasOwn(raw, 'return')) return { kind: 'return', id: idOf(raw.id), value: raw.return };
  if (isRecord(raw.error)) {
    return {
      kind: 'error',
      id: idOf(raw.id),
      errorClass: typeof raw.error.class === 'string' ? raw.error.class : 'GenericError',
      desc: typeof raw.error.desc === 'string' ? raw.error.desc : 'no description',
    };
  }
  throw new QmpProtocolError(`QMP sent an object with unknown keys: ${Object.keys(raw).slice(0, 5).join(', ')}`);
}

/** Encodes one command with its request id as a single QMP line (with the trailing newline). */
export function encodeCommand(execute: string, args: Readonly<Record<string, unknown>> | undefined, id: string): string {
  const msg: Record<string, unknown> = { execute };
  if (args !== undefined) msg.arguments = args;
  msg.id = id;
  return `${JSON.stringify(msg)}\n`;
}
