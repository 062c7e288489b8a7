import { describe, expect, it } from 'vitest';
import { StowageError } from '../core/errors.js';
import { AuthFailureLimiter } from './auth-limiter.js';

function refusal(l: AuthFailureLimiter, source: string): StowageError | undefined {
  try {
    l.check(source);
    return undefined;
  } catch (e) {
    return e as StowageError;
  }
}

describe('AuthFailureLimiter', () => {
  it('refuses a source once it failed the limit within its window, for the rest of the window only', () => {
    let now = 1_000_000;
    const l = new AuthFailureLimiter(3, 60_000, () => now);
    for (let i = 0; i < 3; i++) {
      expect(refusal(l, '10.99.0.7')).toBeUndefined();
      l.failed('10.99.0.7');
    }
    now += 15_000;
    const e = refusal(l, '10.99.0.7');
    expect(e?.code).toBe('RATE_LIMITED');
    expect(e?.details.retryAfterSeconds).toBe(45);
    expect(e?.httpStatus).toBe(429);
    // Another source is not affected.
    expect(refusal(l, '10.99.0.8')).toBeUndefined();
    // The window ends 60 s after the first failure; then the source starts afresh.
    now += 45_000;
    expect(refusal(l, '10.99.0.7')).toBeUndefined();
    l.failed('10.99.0.7');
    expect(refusal(l, '10.99.0.7')).toBeUndefined();
  });

  it('keeps a bounded number of sources: a flood of addresses drops the oldest windows', () => {
    const l = new AuthFailureLimiter(1, 60_000, () => 0);
    l.failed('first');
    expect(refusal(l, 'first')?.code).toBe('RATE_LIMITED');
    for (let i = 0; i < 10_000; i++) l.failed(`10.${String(i >> 16)}.${String((i >> 8) & 255)}.${String(i & 255)}`);
    expect(refusal(l, 'first')).toBeUndefined();
  });
});
