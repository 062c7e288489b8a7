import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { StowageError } from '../core/errors.js';
import { redact } from '../system/command-runner.js';
import { silentLogger, type AgentLogger } from './agent-logger.js';
import { QmpError } from './qmp-error.js';
import { encodeCommand, parseQmpLine, splitLines, type QmpEvent, type QmpGreeting, type QmpMessage } from './qmp-protocol.js';

/** How to reach one QEMU monitor. */
export interface QmpClientOptions {
  /** Path of QEMU's `-qmp unix:<path>,server=on,wait=off` socket. */
  readonly socketPath: string;
  /** Budget for connect + greeting + capability negotiation (default 5 000 ms). */
  readonly connectTimeoutMs?: number;
  /** Reply timeout for commands that do not pass their own (default 30 000 ms). */
  readonly commandTimeoutMs?: number;
  readonly logger?: AgentLogger;
}

/** Per-command options. */
export interface ExecuteOptions {
  /** Reject with TIMEOUT when no reply came within this many milliseconds. */
  readonly timeoutMs?: number;
  /** Reject (code TIMEOUT, details.cancelled) when aborted; QEMU may still run the command. */
  readonly signal?: AbortSignal;
  /** Strings replaced by `***` in every log line and error this command produces. */
  readonly secrets?: readonly string[];
}

/** Matches events while it exists; created before the command that triggers them, so none is missed. */
export interface EventWaiter {
  /** Resolves with the next matching event (or one already seen); rejects with TIMEOUT or when the connection closes. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<QmpEvent>;
  /** Stops listening; a pending wait rejects. */
  dispose(): void;
}

/** Listener for asynchronous QMP events. */
export type QmpEventListener = (event: QmpEvent) => void;
/** Listener for the connection going away; `error` is set when it was not our own close(). */
export type QmpCloseListener = (error: Error | undefined) => void;

interface Pending {
  readonly command: string;
  readonly secrets: readonly string[];
  resolve(value: unknown): void;
  reject(err: Error): void;
}

/** Largest line accepted from QEMU before the connection is dropped as broken. */
const MAX_LINE_CHARS = 32 * 1024 * 1024;
/** Argument keys whose values are never logged, whatever the caller said. */
const SENSITIVE_KEYS = new Set(['data', 'password', 'secret', 'key', 'keyid']);

/** Arguments made safe for a log line: secret strings and sensitive keys replaced by `***`. */
export function redactArgs(args: Readonly<Record<string, unknown>> | undefined, secrets: readonly string[] = []): unknown {
  if (args === undefined) return undefined;
  const walk = (v: unknown, key: string | undefined): unknown => {
    if (key !== undefined && SENSITIVE_KEYS.has(key) && typeof v === 'string') return '***';
    if (typeof v === 'string') return redact(v, secrets);
    if (Array.isArray(v)) return v.map((x) => walk(x, undefined));
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, k)]));
    return v;
  };
  return walk(args, undefined);
}

function unavailable(socketPath: string, why: string, cause?: unknown): StowageError {
  return new StowageError('BACKEND_UNAVAILABLE', `QMP monitor ${socketPath}: ${why}`, { socketPath }, { cause });
}

/**
 * A QMP client over a unix socket. Commands carry request ids and may overlap; replies are matched
 * by id, and events interleaved with replies go to `on('event')` listeners and event waiters.
 * Errors: QmpError for QEMU error replies, StowageError TIMEOUT for timeouts and cancellation,
 * BACKEND_UNAVAILABLE when the monitor cannot be reached or the connection drops.
 */
export class QmpClient {
  readonly socketPath: string;
  private readonly connectTimeoutMs: number;
  private readonly commandTimeoutMs: number;
  private readonly log: AgentLogger;
  private readonly idPrefix = `stw${randomBytes(3).toString('hex')}-`;
  private nextId = 1;
  private socket: net.Socket | null = null;
  private buffer = '';
  private readonly pending = new Map<string, Pending>();
  private readonly eventListeners = new Set<QmpEventListener>();
  private readonly closeListeners = new Set<QmpCloseListener>();
  /** True once capabilities are negotiated on the current socket. */
  private ready = false;
  /** The connect in progress, shared by concurrent reconnect() calls. */
  private opening: Promise<void> | null = null;
  private greetingWaiter: { resolve(g: QmpGreeting): void; reject(err: Error): void } | null = null;
  private lastGreeting: QmpGreeting | null = null;

  private constructor(options: QmpClientOptions) {
    this.socketPath = options.socketPath;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
    this.commandTimeoutMs = options.commandTimeoutMs ?? 30_000;
    this.log = options.logger ?? silentLogger;
  }

  /** Connects, reads the greeting and leaves capability-negotiation mode; throws BACKEND_UNAVAILABLE. */
  static async connect(options: QmpClientOptions): Promise<QmpClient> {
    const client = new QmpClient(options);
    await client.reconnect();
    return client;
  }

  /** True while the socket is open and capabilities are negotiated. */
  get connected(): boolean {
    return this.ready && this.socket !== null && !this.socket.destroyed;
  }

  /** The greeting of the current (or last) connection: QEMU version and offered capabilities. */
  get greeting(): QmpGreeting | null {
    return this.lastGreeting;
  }

  /** Subscribes to events (`'event'`) or to the connection going away (`'close'`); returns the unsubscribe function. */
  on(what: 'event', listener: QmpEventListener): () => void;
  on(what: 'close', listener: QmpCloseListener): () => void;
  on(what: 'event' | 'close', listener: QmpEventListener | QmpCloseListener): () => void {
    if (what === 'event') {
      const l = listener as QmpEventListener;
      this.eventListeners.add(l);
      return () => this.eventListeners.delete(l);
    }
    const l = listener as QmpCloseListener;
    this.closeListeners.add(l);
    return () => this.closeListeners.delete(l);
  }

  /**
   * Runs one command and resolves with its `return` value (waiting for a reconnect in progress);
   * throws QmpError, TIMEOUT or BACKEND_UNAVAILABLE.
   */
  async execute(command: string, args?: Readonly<Record<string, unknown>>, options: ExecuteOptions = {}): Promise<unknown> {
    if (!this.ready && this.opening !== null) await this.opening.catch(() => undefined);
    if (!this.ready) throw unavailable(this.socketPath, `not connected (running ${command})`);
    return this.send(command, args, options);
  }

  private send(command: string, args: Readonly<Record<string, unknown>> | undefined, options: ExecuteOptions): Promise<unknown> {
    const secrets = options.secrets ?? [];
    const timeoutMs = options.timeoutMs ?? this.commandTimeoutMs;
    const socket = this.socket;
    if (socket === null || socket.destroyed) return Promise.reject(unavailable(this.socketPath, `not connected (running ${command})`));
    if (options.signal?.aborted) return Promise.reject(new StowageError('TIMEOUT', `QMP ${command} was cancelled before it was sent`, { command, cancelled: true }));
    const id = `${this.idPrefix}${String(this.nextId++)}`;
    this.log.debug({ qmp: this.socketPath, id, command, args: redactArgs(args, secrets) }, 'qmp execute');
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        finish();
        reject(new StowageError('TIMEOUT', `QMP ${command} got no reply within ${String(timeoutMs)} ms`, { command, timeoutMs }));
      }, timeoutMs);
      const onAbort = (): void => {
        finish();
        reject(new StowageError('TIMEOUT', `QMP ${command} was cancelled`, { command, cancelled: true }));
      };
      const finish = (): void => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        this.pending.delete(id);
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        command,
        secrets,
        resolve: (v) => { finish(); resolve(v); },
        reject: (e) => { finish(); reject(e); },
      });
      socket.write(encodeCommand(command, args, id));
    });
  }

  /** Starts buffering events named `name` that satisfy `predicate`; see EventWaiter. */
  eventWaiter(name: string, predicate: (event: QmpEvent) => boolean = () => true): EventWaiter {
    const seen: QmpEvent[] = [];
    let active: { resolve(e: QmpEvent): void; reject(err: Error): void } | null = null;
    const offEvent = this.on('event', (e) => {
      if (e.event !== name || !predicate(e)) return;
      if (active !== null) active.resolve(e);
      else seen.push(e);
    });
    const offClose = this.on('close', () => active?.reject(unavailable(this.socketPath, `connection closed while waiting for ${name}`)));
    const dispose = (): void => {
      offEvent();
      offClose();
      active?.reject(new StowageError('TIMEOUT', `stopped waiting for QMP event ${name}`, { event: name, cancelled: true }));
    };
    const wait = (timeoutMs: number, signal?: AbortSignal): Promise<QmpEvent> => {
      const first = seen.shift();
      if (first !== undefined) return Promise.resolve(first);
      if (!this.connected) return Promise.reject(unavailable(this.socketPath, `not connected (waiting for ${name})`));
      if (active !== null) return Promise.reject(new Error(`already waiting for ${name}`));
      return new Promise<QmpEvent>((resolve, reject) => {
        const timer = setTimeout(() => {
          settle(() => { reject(new StowageError('TIMEOUT', `no QMP event ${name} within ${String(timeoutMs)} ms`, { event: name, timeoutMs })); });
        }, timeoutMs);
        const onAbort = (): void => { settle(() => { reject(new StowageError('TIMEOUT', `waiting for QMP event ${name} was cancelled`, { event: name, cancelled: true })); }); };
        const settle = (fn: () => void): void => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          active = null;
          fn();
        };
        if (signal?.aborted) { settle(onAbort); return; }
        signal?.addEventListener('abort', onAbort, { once: true });
        active = { resolve: (e) => { settle(() => { resolve(e); }); }, reject: (err) => { settle(() => { reject(err); }); } };
      });
    };
    return { wait, dispose };
  }

  /** Waits for the next event `name` matching `predicate` that arrives from now on. */
  async waitForEvent(name: string, predicate: (event: QmpEvent) => boolean = () => true, timeoutMs = this.commandTimeoutMs, signal?: AbortSignal): Promise<QmpEvent> {
    const waiter = this.eventWaiter(name, predicate);
    try {
      return await waiter.wait(timeoutMs, signal);
    } finally {
      waiter.dispose();
    }
  }

  /** Closes the connection (pending commands reject with BACKEND_UNAVAILABLE); safe to call twice. */
  async close(): Promise<void> {
    const socket = this.socket;
    if (socket === null) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => { resolve(); });
      socket.end();
      setTimeout(() => socket.destroy(), 1_000).unref();
    });
  }

  /** Drops the current connection, if any, and opens a new one to the same socket; concurrent calls share one attempt. */
  reconnect(): Promise<void> {
    if (this.opening !== null) return this.opening;
    const attempt = (async () => {
      await this.close();
      await this.open();
    })();
    this.opening = attempt;
    const clear = (): void => { if (this.opening === attempt) this.opening = null; };
    attempt.then(clear, clear);
    return attempt;
  }

  private async open(): Promise<void> {
    const deadline = Date.now() + this.connectTimeoutMs;
    const socket = net.createConnection(this.socketPath);
    socket.setEncoding('utf8');
    let closedBy: Error | undefined;
    this.buffer = '';
    this.socket = socket;
    socket.on('data', (chunk: string) => { this.onData(socket, chunk); });
    socket.on('error', (err) => { closedBy = err; });
    socket.on('close', () => { this.onClose(socket, closedBy); });
    try {
      await this.withDeadline(deadline, 'connect', new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      }));
      const greeting = await this.withDeadline(deadline, 'greeting (is another client connected to this monitor?)', new Promise<QmpGreeting>((resolve, reject) => {
        this.greetingWaiter = { resolve, reject };
      }));
      this.lastGreeting = greeting;
      await this.send('qmp_capabilities', undefined, { timeoutMs: Math.max(1, deadline - Date.now()) });
      this.ready = true;
      this.log.debug({ qmp: this.socketPath, version: greeting.version }, 'qmp connected');
    } catch (err) {
      this.greetingWaiter = null;
      socket.destroy();
      if (err instanceof StowageError && err.code === 'BACKEND_UNAVAILABLE') throw err;
      const why = err instanceof Error ? err.message : String(err);
      throw unavailable(this.socketPath, `cannot open: ${why}`, err);
    }
  }

  private withDeadline<T>(deadline: number, what: string, p: Promise<T>): Promise<T> {
    const ms = Math.max(0, deadline - Date.now());
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => { reject(unavailable(this.socketPath, `no ${what} within the ${String(this.connectTimeoutMs)} ms connect budget`)); }, ms);
    });
    return Promise.race([p, timeout]).finally(() => { clearTimeout(timer); });
  }

  private onData(socket: net.Socket, chunk: string): void {
    if (socket !== this.socket) return;
    const { lines, rest } = splitLines(this.buffer + chunk);
    this.buffer = rest;
    if (this.buffer.length > MAX_LINE_CHARS) {
      this.log.error({ qmp: this.socketPath, chars: this.buffer.length }, 'qmp line too long; dropping the connection');
      socket.destroy(new Error('QMP line too long'));
      return;
    }
    for (const line of lines) {
      let msg: QmpMessage;
      try {
        msg = parseQmpLine(line);
      } catch (err) {
        this.log.warn({ qmp: this.socketPath, err: err instanceof Error ? err.message : String(err) }, 'qmp: ignoring a malformed line');
        continue;
      }
      this.dispatch(msg);
    }
  }

  private dispatch(msg: QmpMessage): void {
    switch (msg.kind) {
      case 'greeting': {
        const w = this.greetingWaiter;
        this.greetingWaiter = null;
        w?.resolve(msg);
        return;
      }
      case 'event':
        this.log.debug({ qmp: this.socketPath, event: msg.event, data: redactArgs(msg.data) }, 'qmp event');
        for (const l of [...this.eventListeners]) {
          try {
            l(msg);
          } catch (err) {
            this.log.warn({ qmp: this.socketPath, event: msg.event, err: err instanceof Error ? err.message : String(err) }, 'qmp event listener threw');
          }
        }
        return;
      case 'return':
      case 'error': {
        // A reply without an id (QEMU could not parse the request) belongs to the oldest command.
        const id = msg.id ?? this.pending.keys().next().value;
        const p = id === undefined ? undefined : this.pending.get(id);
        if (p === undefined) {
          this.log.debug({ qmp: this.socketPath, id }, 'qmp reply for a command no longer waited for (timed out or cancelled)');
          return;
        }
        if (msg.kind === 'return') {
          p.resolve(msg.value);
        } else {
          const err = new QmpError(p.command, msg.errorClass, msg.desc, p.secrets);
          this.log.debug({ qmp: this.socketPath, id, command: p.command, qmpClass: err.qmpClass, desc: err.desc }, 'qmp error reply');
          p.reject(err);
        }
        return;
      }
    }
  }

  private onClose(socket: net.Socket, error: Error | undefined): void {
    if (socket !== this.socket) return;
    this.socket = null;
    this.ready = false;
    const greetingWaiter = this.greetingWaiter;
    this.greetingWaiter = null;
    greetingWaiter?.reject(unavailable(this.socketPath, `connection closed before the greeting${error ? ` (${error.message})` : ''}`, error));
    for (const p of [...this.pending.values()]) p.reject(unavailable(this.socketPath, `connection closed while running ${p.command}${error ? ` (${error.message})` : ''}`, error));
    this.log.debug({ qmp: this.socketPath, err: error?.message }, 'qmp connection closed');
    for (const l of [...this.closeListeners]) l(error);
  }
}
