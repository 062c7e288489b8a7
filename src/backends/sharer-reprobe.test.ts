import { describe, expect, it } from 'vitest';
import { SharerReprobe } from './sharer-reprobe.js';

const quiet = { warn: (): void => undefined };

/** A pass that records its batches and waits `msPerPass` (one pass over a filesystem's backends). */
function recorder(msPerPass = 5): { batches: string[][]; pass: (fs: ReadonlySet<string>) => Promise<void> } {
  const batches: string[][] = [];
  return {
    batches,
    pass: async (fs) => {
      batches.push([...fs].sort());
      await new Promise((r) => setTimeout(r, msPerPass));
    },
  };
}

describe('SharerReprobe (background probes of a filesystem\'s backends after one joined or left)', () => {
  it('coalesces a burst of requests into a handful of passes, each filesystem once per pass', async () => {
    const { batches, pass } = recorder();
    const r = new SharerReprobe(pass, quiet);
    for (let i = 0; i < 100; i++) {
      r.request(i % 2 === 0 ? 'fs-a' : 'fs-b');
      if (i % 10 === 0) await new Promise((res) => setTimeout(res, 1));
    }
    await r.settled();
    expect(batches.length).toBeGreaterThanOrEqual(1);
    expect(batches.length).toBeLessThanOrEqual(11);
    for (const b of batches) expect(b.length).toBe(new Set(b).size);
    expect(batches.at(-1)).toEqual(['fs-a', 'fs-b']);
  });

  it('a request made during a pass gets a pass of its own after it', async () => {
    const { batches, pass } = recorder(20);
    const r = new SharerReprobe(pass, quiet);
    r.request('fs-a');
    await new Promise((res) => setTimeout(res, 5));
    r.request('fs-b');
    await r.settled();
    expect(batches).toEqual([['fs-a'], ['fs-b']]);
  });

  it('logs a failed pass and goes on with the next', async () => {
    const warned: unknown[] = [];
    let calls = 0;
    const r = new SharerReprobe(async () => {
      calls++;
      if (calls === 1) throw new Error('store gone');
      await Promise.resolve();
    }, { warn: (o: unknown) => { warned.push(o); } });
    r.request('fs-a');
    await r.settled();
    r.request('fs-a');
    await r.settled();
    expect(calls).toBe(2);
    expect(warned).toHaveLength(1);
  });

  it('stop() drops what is pending, tells the running pass to end, waits for it, and takes no more', async () => {
    let seenStopped = false;
    let passes = 0;
    const r = new SharerReprobe(async (_fs, stopped) => {
      passes++;
      await new Promise((res) => setTimeout(res, 20));
      seenStopped = stopped();
    }, quiet);
    r.request('fs-a');
    await new Promise((res) => setTimeout(res, 5));
    r.request('fs-b'); // pending behind the running pass
    await r.stop();
    expect(seenStopped).toBe(true);
    expect(passes).toBe(1);
    r.request('fs-c');
    await r.settled();
    expect(passes).toBe(1);
  });
});
