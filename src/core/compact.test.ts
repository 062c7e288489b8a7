import { describe, expect, it } from 'vitest';
import { compact, nonEmpty } from './compact.js';

describe('compact', () => {
  it('drops undefined-valued keys and keeps every other value, falsy ones included', () => {
    const out = compact({ a: 1, b: undefined, c: '', d: 0, e: false, f: null, g: [] as string[] });
    expect(out).toEqual({ a: 1, c: '', d: 0, e: false, f: null, g: [] });
    expect(Object.keys(out)).not.toContain('b');
  });

  it('types a possibly-undefined field as optional, so the result fits an exactOptionalPropertyTypes shape', () => {
    const zone: string | undefined = undefined;
    const body: { name: string; zone?: string } = compact({ name: 'n', zone });
    expect(body).toEqual({ name: 'n' });
  });
});

describe('nonEmpty', () => {
  it('turns an empty string into undefined and leaves anything else alone', () => {
    expect(nonEmpty('')).toBeUndefined();
    expect(nonEmpty(undefined)).toBeUndefined();
    expect(nonEmpty('a')).toBe('a');
  });
});
