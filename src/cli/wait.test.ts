import { describe, expect, it } from 'vitest';
import type { Operation } from '../core/schemas/operation-schema.js';
import { ProgressDisplay, assertSucceeded } from './wait.js';
import { CliError } from './errors.js';

const op = (over: Partial<Operation>): Operation => ({
  id: 'op-aaaaaaaaaaaaaaaaaaaa', tenantId: 'tn-default00000000000000', kind: 'volume.create', targetType: 'volume', targetId: 'vol-aaaaaaaaaaaaaaaaaaaa', state: 'queued', step: 'provision',
  stepsDone: [], attempts: 0, progress: null, result: null, error: null, actor: 'admin', idempotencyKey: null, waitingReason: null,
  createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z', finishedAt: null, ...over,
});

function stream(isTTY: boolean): { write(t: string): void; isTTY: boolean; text: string } {
  return { isTTY, text: '', write(t) { this.text += t; } };
}

describe('ProgressDisplay', () => {
  it('prints one plain line per change when not on a terminal', () => {
    const out = stream(false);
    const d = new ProgressDisplay(out, 'volume.create v1', 0, () => 0);
    d.update(op({}));
    d.update(op({}));
    d.update(op({ state: 'running', step: 'activate', stepsDone: [{ name: 'provision', at: '2026-01-01T00:00:01.000Z' }], progress: 0.5 }));
    d.update(op({ state: 'succeeded', step: null }));
    d.finish('done');
    expect(out.text).toBe([
      'volume.create v1: queued (first step provision)',
      'volume.create v1: step activate, 1 step done, 50%',
      'done',
      '',
    ].join('\n'));
  });

  it('redraws one line in place on a terminal and clears it at the end', () => {
    const out = stream(true);
    const d = new ProgressDisplay(out, 'volume.create v1', 0, () => 1500);
    d.update(op({ state: 'running' }));
    d.finish('✓ done');
    expect(out.text).toMatch(/^\r\x1b\[2K. volume\.create v1: step provision {2}1\.5s\r\x1b\[2K✓ done\n$/);
  });
});

describe('assertSucceeded', () => {
  it('turns a failed operation into its code and message', () => {
    const failed = op({ state: 'failed', error: { code: 'BACKEND_UNAVAILABLE', message: 'disk gone', details: {} } });
    expect(() => assertSucceeded(failed)).toThrow(CliError);
    expect(() => assertSucceeded(failed)).toThrow('disk gone');
    expect(assertSucceeded(op({ state: 'succeeded' })).state).toBe('succeeded');
  });
});
