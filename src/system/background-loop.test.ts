import { afterEach, describe, expect, it, vi } from 'vitest';
import { BackgroundLoop, type BackgroundLoopOptions, type LoopPass } from './background-loop.js';

interface Logged { readonly obj: Record<string, unknown>; readonly msg: string }

function recorder(): { logger: BackgroundLoopOptions['logger']; lines: Logged[] } {
  const lines: Logged[] = [];
  const logger = { warn: (obj: Record<string, unknown>, msg: string): void => { lines.push({ obj, msg }); } } as unknown as BackgroundLoopOptions['logger'];
  return { logger, lines };
}

/** A pass that stays running until the test releases it. */
function heldPass(): { pass: LoopPass; calls: AbortSignal[]; release: () => void } {
  const calls: AbortSignal[] = [];
  let release: () => void = () => undefined;
  const pass: LoopPass = (signal) => {
    calls.push(signal);
    return new Promise<void>((resolve) => { release = resolve; });
  };
  return { pass, calls, release: () => { release(); } };
}

describe('BackgroundLoop scheduling (fake timers)', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('waits one interval, shortened by the jitter, before each pass; runAtStart runs the first at once', async () => {
    vi.useFakeTimers();
    const { logger } = recorder();
    let calls = 0;
    const loop = new BackgroundLoop(() => { calls++; return Promise.resolve(); }, { name: 't', intervalMs: 1000, jitter: 0.5, timeoutMs: 5000, logger, random: () => 1 });
    loop.start();
    await vi.advanceTimersByTimeAsync(499);
    expect(calls).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(500);
    expect(calls).toBe(2);
    await loop.stop(0);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toBe(2);

    let eager = 0;
    const first = new BackgroundLoop(() => { eager++; return Promise.resolve(); }, { name: 'e', intervalMs: 1000, jitter: 0, timeoutMs: 5000, logger, runAtStart: true });
    first.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(eager).toBe(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(eager).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(eager).toBe(2);
    await first.stop(0);
  });

  it('never waits longer than the interval, whatever the random draw', async () => {
    vi.useFakeTimers();
    const { logger } = recorder();
    let calls = 0;
    const loop = new BackgroundLoop(() => { calls++; return Promise.resolve(); }, { name: 't', intervalMs: 1000, jitter: 0.2, timeoutMs: 5000, logger, random: () => 0 });
    loop.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toBe(1);
    await loop.stop(0);
  });

  it('runs one pass at a time: the next wait starts only when the pass has ended', async () => {
    vi.useFakeTimers();
    const { logger } = recorder();
    const held = heldPass();
    const loop = new BackgroundLoop(held.pass, { name: 't', intervalMs: 100, jitter: 0, timeoutMs: 60_000, logger });
    loop.start();
    await vi.advanceTimersByTimeAsync(100);
    expect(held.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(held.calls).toHaveLength(1);
    expect(loop.busy).toBe(true);
    held.release();
    await vi.advanceTimersByTimeAsync(99);
    expect(held.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(held.calls).toHaveLength(2);
    held.release();
    await loop.stop(0);
  });

  it('logs a failed pass and keeps going', async () => {
    vi.useFakeTimers();
    const { logger, lines } = recorder();
    let calls = 0;
    const loop = new BackgroundLoop(() => { calls++; return calls === 1 ? Promise.reject(new Error('store hiccup')) : Promise.resolve(); }, { name: 'flaky', intervalMs: 100, jitter: 0, timeoutMs: 5000, logger });
    loop.start();
    await vi.advanceTimersByTimeAsync(200);
    expect(calls).toBe(2);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.msg).toBe('background pass failed');
    expect(lines[0]?.obj.loop).toBe('flaky');
    expect((lines[0]?.obj.err as Error).message).toBe('store hiccup');
    await loop.stop(0);
  });

  it('gives each pass its own signal, aborted when the pass outlives its timeout', async () => {
    vi.useFakeTimers();
    const { logger, lines } = recorder();
    const held = heldPass();
    const loop = new BackgroundLoop(held.pass, { name: 'slow', intervalMs: 100, jitter: 0, timeoutMs: 1000, logger });
    loop.start();
    await vi.advanceTimersByTimeAsync(100);
    const first = held.calls[0];
    expect(first?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(999);
    expect(first?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(first?.aborted).toBe(true);
    expect(lines.map((l) => l.msg)).toEqual(['background pass timed out; aborting it']);
    held.release();
    await vi.advanceTimersByTimeAsync(100);
    expect(held.calls).toHaveLength(2);
    expect(held.calls[1]).not.toBe(first);
    expect(held.calls[1]?.aborted).toBe(false);
    held.release();
    await loop.stop(0);
  });

  it('refuses a non-positive interval or timeout and a jitter outside 0–1', () => {
    const { logger } = recorder();
    const pass = (): Promise<void> => Promise.resolve();
    expect(() => new BackgroundLoop(pass, { name: 'x', intervalMs: 0, timeoutMs: 1, logger })).toThrow(RangeError);
    expect(() => new BackgroundLoop(pass, { name: 'x', intervalMs: 1, timeoutMs: 0, logger })).toThrow(RangeError);
    expect(() => new BackgroundLoop(pass, { name: 'x', intervalMs: 1, timeoutMs: 1, jitter: 1.5, logger })).toThrow(RangeError);
  });
});

describe('BackgroundLoop.stop (real time)', () => {
  it('resolves at once when no pass is running, and schedules nothing afterwards', async () => {
    const { logger } = recorder();
    let calls = 0;
    const loop = new BackgroundLoop(() => { calls++; return Promise.resolve(); }, { name: 'idle', intervalMs: 20, jitter: 0, timeoutMs: 1000, logger });
    loop.start();
    await vi.waitFor(() => { expect(calls).toBeGreaterThan(0); });
    // Stop between passes: the pass that has just ended must be the last one.
    await vi.waitFor(() => { expect(loop.busy).toBe(false); });
    expect(await loop.stop(5000)).toEqual({ name: 'idle', wasRunning: false, drained: true });
    const after = calls;
    await new Promise((r) => setTimeout(r, 100));
    expect(calls).toBe(after);
  });

  it('waits for a running pass to finish on its own and does not abort it', async () => {
    const { logger } = recorder();
    const held = heldPass();
    const loop = new BackgroundLoop(held.pass, { name: 'drain', intervalMs: 10, jitter: 0, timeoutMs: 60_000, logger });
    loop.start();
    await vi.waitFor(() => { expect(held.calls).toHaveLength(1); });
    let resolved = false;
    const stopping = loop.stop(60_000).then((r) => { resolved = true; return r; });
    await new Promise((r) => setTimeout(r, 50));
    expect(resolved).toBe(false);
    held.release();
    expect(await stopping).toEqual({ name: 'drain', wasRunning: true, drained: true });
    expect(held.calls[0]?.aborted).toBe(false);
    expect(held.calls).toHaveLength(1);
  });

  it('aborts a pass that outlives the drain and resolves once it has ended', async () => {
    const { logger, lines } = recorder();
    const calls: AbortSignal[] = [];
    const pass: LoopPass = (signal) => {
      calls.push(signal);
      return new Promise<void>((resolve) => { signal.addEventListener('abort', () => { resolve(); }); });
    };
    const loop = new BackgroundLoop(pass, { name: 'stubborn', intervalMs: 10, jitter: 0, timeoutMs: 60_000, logger });
    loop.start();
    await vi.waitFor(() => { expect(calls).toHaveLength(1); });
    expect(await loop.stop(50)).toEqual({ name: 'stubborn', wasRunning: true, drained: true });
    expect(calls[0]?.aborted).toBe(true);
    expect(lines.map((l) => l.msg)).toContain('background pass outlived the drain; aborting it');
  });

  it('gives up after the abort grace on a pass that ignores its signal, and says so', async () => {
    const { logger } = recorder();
    const held = heldPass();
    const loop = new BackgroundLoop(held.pass, { name: 'deaf', intervalMs: 10, jitter: 0, timeoutMs: 60_000, abortGraceMs: 50, logger });
    loop.start();
    await vi.waitFor(() => { expect(held.calls).toHaveLength(1); });
    expect(await loop.stop(50)).toEqual({ name: 'deaf', wasRunning: true, drained: false });
    held.release();
    await vi.waitFor(() => { expect(loop.busy).toBe(false); });
    await new Promise((r) => setTimeout(r, 50));
    expect(held.calls).toHaveLength(1);
  });
});
