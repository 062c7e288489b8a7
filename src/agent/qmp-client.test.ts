import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LogFields } from './agent-logger.js';
import { QmpClient, redactArgs } from './qmp-client.js';
import { QmpError } from './qmp-error.js';

/** A scripted stand-in for QEMU's monitor: the unit under test is our protocol handling, not QEMU. */
interface FakeMonitor {
  readonly socketPath: string;
  /** Commands received, in order. */
  readonly received: { execute: string; id?: string; arguments?: Record<string, unknown> }[];
  /** Decides what to do with each command after qmp_capabilities. */
  onCommand: (cmd: { execute: string; id?: string; arguments?: Record<string, unknown> }, conn: net.Socket) => void;
  /** Sends nothing on connect (like a monitor busy with another client). */
  silent: boolean;
  connections: net.Socket[];
  close(): Promise<void>;
}

const GREETING = '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}\n';
const send = (conn: net.Socket, obj: unknown): void => { conn.write(`${JSON.stringify(obj)}\n`); };

async function startFakeMonitor(dir: string): Promise<FakeMonitor> {
  const socketPath = join(dir, 'fake.qmp');
  const fake: FakeMonitor = {
    socketPath,
    received: [],
    onCommand: (cmd, conn) => { send(conn, { return: {}, id: cmd.id }); },
    silent: false,
    connections: [],
    close: () => new Promise((resolve) => {
      for (const c of fake.connections) c.destroy();
      server.close(() => { resolve(); });
    }),
  };
  const server = net.createServer((conn) => {
    fake.connections.push(conn);
    conn.setEncoding('utf8');
    if (!fake.silent) conn.write(GREETING);
    let buf = '';
    conn.on('data', (chunk: string) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const cmd = JSON.parse(buf.slice(0, i)) as { execute: string; id?: string; arguments?: Record<string, unknown> };
        buf = buf.slice(i + 1);
        fake.received.push(cmd);
        if (cmd.execute === 'qmp_capabilities') send(conn, { return: {}, id: cmd.id });
        else fake.onCommand(cmd, conn);
      }
    });
    conn.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return fake;
}

function captureLogger(): { lines: string[]; debug(f: LogFields, m: string): void; info(f: LogFields, m: string): void; warn(f: LogFields, m: string): void; error(f: LogFields, m: string): void } {
  const lines: string[] = [];
  const at = (level: string) => (f: LogFields, m: string): void => { lines.push(JSON.stringify({ level, m, ...f })); };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

describe('QmpClient (against a scripted monitor)', () => {
  let dir: string;
  let fake: FakeMonitor;
  let client: QmpClient | undefined;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stw-qmp-unit-'));
    fake = await startFakeMonitor(dir);
  });

  afterEach(async () => {
    await client?.close();
    client = undefined;
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('negotiates capabilities and exposes the greeting', async () => {
    client = await QmpClient.connect({ socketPath: fake.socketPath });
    expect(client.connected).toBe(true);
    expect(client.greeting?.version).toEqual({ major: 7, minor: 2, micro: 22 });
    expect(fake.received[0]?.execute).toBe('qmp_capabilities');
  });

  it('matches replies to commands by id even when they come back out of order', async () => {
    const held: { id?: string; execute: string }[] = [];
    fake.onCommand = (cmd, conn) => {
      held.push(cmd);
      if (held.length === 3) for (const c of [...held].reverse()) send(conn, { return: { for: c.execute }, id: c.id });
    };
    const c = await QmpClient.connect({ socketPath: fake.socketPath });
    client = c;
    const results = await Promise.all(['a', 'b', 'c'].map((cmd) => c.execute(cmd)));
    expect(results).toEqual([{ for: 'a' }, { for: 'b' }, { for: 'c' }]);
    expect(new Set(fake.received.map((r) => r.id)).size).toBe(4);
  });

  it('delivers events that arrive between and inside replies, and buffers them for waiters', async () => {
    fake.onCommand = (cmd, conn) => {
      const ev = (name: string, data: object): string => JSON.stringify({ timestamp: { seconds: 1, microseconds: 2000 }, event: name, data });
      // One write holding an event, the reply split in two, and another event.
      const text = `${ev('DEVICE_DELETED', { device: 'other' })}\n${JSON.stringify({ return: {}, id: cmd.id })}\n${ev('DEVICE_DELETED', { device: 'mine' })}\n`;
      conn.write(text.slice(0, 40));
      setTimeout(() => conn.write(text.slice(40)), 5);
    };
    client = await QmpClient.connect({ socketPath: fake.socketPath });
    const seen: string[] = [];
    const off = client.on('event', (e) => seen.push(`${e.event}:${String(e.data.device)}`));
    const waiter = client.eventWaiter('DEVICE_DELETED', (e) => e.data.device === 'mine');
    await client.execute('device_del', { id: 'mine' });
    await new Promise((r) => setTimeout(r, 20));
    const event = await waiter.wait(1_000); // arrived before wait(): must be buffered
    waiter.dispose();
    off();
    expect(event.data.device).toBe('mine');
    expect(event.timestampMs).toBe(1002);
    expect(seen).toEqual(['DEVICE_DELETED:other', 'DEVICE_DELETED:mine']);
  });

  it('turns error replies into QmpError with class and description, with secrets redacted', async () => {
    fake.onCommand = (cmd, conn) => { send(conn, { error: { class: 'GenericError', desc: 'login failed for pw hunter2' }, id: cmd.id }); };
    const log = captureLogger();
    client = await QmpClient.connect({ socketPath: fake.socketPath, logger: log });
    const err = await client.execute('object-add', { 'qom-type': 'secret', id: 's', data: 'hunter2' }, { secrets: ['hunter2'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect(err).toMatchObject({ qmpClass: 'GenericError', desc: 'login failed for pw ***', command: 'object-add', code: 'DRIVER_FAILED' });
    expect((err as Error).message).toBe('QMP object-add failed: GenericError: login failed for pw ***');
    expect(log.lines.length).toBeGreaterThan(0);
    for (const l of log.lines) expect(l).not.toContain('hunter2');
  });

  it('times out a command, ignores its late reply and keeps working', async () => {
    fake.onCommand = (cmd, conn) => {
      const delay = cmd.execute === 'slow' ? 150 : 0;
      setTimeout(() => { send(conn, { return: cmd.execute, id: cmd.id }); }, delay);
    };
    client = await QmpClient.connect({ socketPath: fake.socketPath });
    await expect(client.execute('slow', undefined, { timeoutMs: 20 })).rejects.toMatchObject({ code: 'TIMEOUT', details: { command: 'slow' } });
    await new Promise((r) => setTimeout(r, 200));
    expect(await client.execute('fast')).toBe('fast');
  });

  it('rejects on abort', async () => {
    fake.onCommand = () => undefined;
    client = await QmpClient.connect({ socketPath: fake.socketPath });
    const ac = new AbortController();
    const p = client.execute('hang', undefined, { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: 'TIMEOUT', details: { cancelled: true } });
    await expect(client.execute('x', undefined, { signal: ac.signal })).rejects.toMatchObject({ code: 'TIMEOUT' });
  });

  it('gives a reply without an id to the oldest command', async () => {
    fake.onCommand = (_cmd, conn) => { send(conn, { error: { class: 'GenericError', desc: 'JSON parse error' } }); };
    client = await QmpClient.connect({ socketPath: fake.socketPath });
    await expect(client.execute('first')).rejects.toMatchObject({ command: 'first', desc: 'JSON parse error' });
  });

  it('skips malformed lines with a warning', async () => {
    fake.onCommand = (cmd, conn) => { conn.write(`not json\n{"weird": 1}\n${JSON.stringify({ return: 5, id: cmd.id })}\n`); };
    const log = captureLogger();
    client = await QmpClient.connect({ socketPath: fake.socketPath, logger: log });
    expect(await client.execute('x')).toBe(5);
    expect(log.lines.filter((l) => l.includes('malformed'))).toHaveLength(2);
  });

  it('rejects pending commands and notifies listeners when the monitor goes away, then reconnects', async () => {
    fake.onCommand = () => undefined;
    client = await QmpClient.connect({ socketPath: fake.socketPath });
    const closes: (string | undefined)[] = [];
    client.on('close', (e) => closes.push(e?.message));
    const waiter = client.eventWaiter('NEVER');
    const pendingWait = waiter.wait(5_000);
    const pending = client.execute('hang');
    for (const c of fake.connections) c.destroy();
    await expect(pending).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    await expect(pendingWait).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    waiter.dispose();
    expect(client.connected).toBe(false);
    expect(closes).toHaveLength(1);
    await expect(client.execute('x')).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });

    fake.onCommand = (cmd, conn) => { send(conn, { return: 'again', id: cmd.id }); };
    await client.reconnect();
    expect(await client.execute('x')).toBe('again');
  });

  it('shares one reconnect among concurrent callers and holds commands until it is done', async () => {
    const c = await QmpClient.connect({ socketPath: fake.socketPath });
    client = c;
    await c.close();
    const before = fake.connections.length;
    const r1 = c.reconnect();
    const r2 = c.reconnect();
    expect(r2).toBe(r1);
    const result = c.execute('query-status'); // sent only after capabilities are negotiated
    await r1;
    expect(await result).toEqual({});
    expect(fake.connections.length).toBe(before + 1);
    const afterHandshake = fake.received.slice(-2).map((r) => r.execute);
    expect(afterHandshake).toEqual(['qmp_capabilities', 'query-status']);
  });

  it('gives up when the monitor sends no greeting (another client holds it)', async () => {
    fake.silent = true;
    await expect(QmpClient.connect({ socketPath: fake.socketPath, connectTimeoutMs: 100 })).rejects.toMatchObject({
      code: 'BACKEND_UNAVAILABLE',
      message: expect.stringContaining('greeting') as unknown,
    });
  });

  it('fails clearly when there is no socket', async () => {
    await expect(QmpClient.connect({ socketPath: join(dir, 'missing.qmp') })).rejects.toMatchObject({
      code: 'BACKEND_UNAVAILABLE',
      message: expect.stringContaining('ENOENT') as unknown,
    });
  });

  it('rejects a waiter with TIMEOUT when nothing comes', async () => {
    client = await QmpClient.connect({ socketPath: fake.socketPath });
    await expect(client.waitForEvent('NEVER', () => true, 20)).rejects.toMatchObject({ code: 'TIMEOUT', details: { event: 'NEVER' } });
  });
});

describe('redactArgs', () => {
  it('hides secret strings anywhere and sensitive keys always', () => {
    expect(redactArgs({ 'qom-type': 'secret', id: 's1', data: 'abc' })).toEqual({ 'qom-type': 'secret', id: 's1', data: '***' });
    expect(redactArgs({ file: { filename: 'iscsi://u%pw1@h/t/1' }, list: ['pw1'] }, ['pw1'])).toEqual({ file: { filename: 'iscsi://u%***@h/t/1' }, list: ['***'] });
    expect(redactArgs(undefined)).toBeUndefined();
  });
});
