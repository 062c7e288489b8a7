import { InvalidArgumentError } from 'commander';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { collectCapability, collectKeyValue, durationArg, intArg, numberArg, sizeArg } from './parse.js';

describe('sizeArg', () => {
  it('parses human sizes into bytes', () => {
    expect(sizeArg('10G')).toBe(10 * 1024 ** 3);
    expect(sizeArg('512MiB')).toBe(512 * 1024 ** 2);
    expect(sizeArg('1GB')).toBe(1e9);
  });

  it('turns bad sizes into usage errors that name the input', () => {
    for (const bad of ['10Q', '', '-5G', '0', '1.5']) {
      expect(() => sizeArg(bad)).toThrow(InvalidArgumentError);
    }
    expect(() => sizeArg('10Q')).toThrow(/"10Q" is not a size/);
  });
});

describe('durationArg', () => {
  it('parses ms, s, m, h and bare seconds', () => {
    expect(durationArg('500ms')).toBe(500);
    expect(durationArg('2s')).toBe(2000);
    expect(durationArg('10m')).toBe(600_000);
    expect(durationArg('1h')).toBe(3_600_000);
    expect(durationArg('3')).toBe(3000);
    expect(durationArg('0.5s')).toBe(500);
    expect(durationArg('2d')).toBe(2 * 86_400_000);
  });

  it('rejects zero, negatives and unknown units', () => {
    for (const bad of ['0s', '-1s', '2w', 'soon', '']) expect(() => durationArg(bad)).toThrow(InvalidArgumentError);
  });

  it('round-trips every whole number of seconds', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 1_000_000 }), (n) => durationArg(`${n}s`) === n * 1000 && durationArg(`${n}ms`) === n));
  });
});

describe('number parsers', () => {
  it('keeps whole numbers within bounds', () => {
    expect(intArg(0, 10)('7')).toBe(7);
    expect(() => intArg(0, 10)('11')).toThrow(InvalidArgumentError);
    expect(() => intArg(0, 10)('1.5')).toThrow(InvalidArgumentError);
  });

  it('honours an exclusive maximum', () => {
    expect(numberArg(0, 100, true)('99.5')).toBe(99.5);
    expect(() => numberArg(0, 100, true)('100')).toThrow(/exclusive/);
    expect(numberArg(1, 100)('100')).toBe(100);
  });
});

describe('repeatable options', () => {
  it('collects key=value pairs, keeping "=" inside values', () => {
    expect(collectKeyValue('b=x=y', collectKeyValue('a=1', undefined))).toEqual({ a: '1', b: 'x=y' });
    expect(() => collectKeyValue('novalue', undefined)).toThrow(InvalidArgumentError);
  });

  it('collects capability edits, the last edit of a name winning', () => {
    let edits = collectCapability('+snapshot.offload', undefined);
    edits = collectCapability('-thin', edits);
    edits = collectCapability('-snapshot.offload', edits);
    expect(edits).toEqual({ add: [], remove: ['thin', 'snapshot.offload'] });
    expect(() => collectCapability('thin', undefined)).toThrow(/\+CAPABILITY/);
  });
});
