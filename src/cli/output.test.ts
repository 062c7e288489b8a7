import { describe, expect, it } from 'vitest';
import { ago, bar, escapeTerminal, formatAge, formatDuration, formatScore, formatTime, renderFields, renderTable, safeStream, writeControl } from './output.js';

describe('renderTable', () => {
  it('pads columns to the widest cell and upper-cases headers', () => {
    expect(renderTable(['name', 'size'], [['a', '1 GiB'], ['longer', '2 GiB']])).toBe('NAME    SIZE\na       1 GiB\nlonger  2 GiB\n');
  });

  it('renders just the header for no rows', () => {
    expect(renderTable(['name', 'state'], [])).toBe('NAME  STATE\n');
  });
});

describe('renderFields', () => {
  it('aligns values and indents continuation lines', () => {
    expect(renderFields([['Name', 'v1'], ['Placement', 'first\nsecond']])).toBe('Name:       v1\nPlacement:  first\n            second\n');
  });
});

describe('formatting', () => {
  it('says ages compactly', () => {
    expect(formatAge(4_400)).toBe('4s');
    expect(formatAge(125_000)).toBe('2m');
    expect(formatAge(7_300_000)).toBe('2h');
    expect(formatAge(200_000_000)).toBe('2d');
    expect(ago(null, 0)).toBe('never');
    expect(ago('1970-01-01T00:00:00.000Z', 5000)).toBe('5s ago');
  });

  it('says durations for people', () => {
    expect(formatDuration(850)).toBe('850ms');
    expect(formatDuration(4200)).toBe('4.2s');
    expect(formatDuration(190_000)).toBe('3m10s');
  });

  it('draws bars clamped to [0, 1]', () => {
    expect(bar(0.5, 4)).toBe('[██░░]');
    expect(bar(2, 4)).toBe('[████]');
    expect(bar(Number.NaN, 4)).toBe('[░░░░]');
  });

  it('keeps huge scores readable', () => {
    expect(formatScore(-3e18)).toBe('-3.000e+18');
    expect(formatScore(12.34567)).toBe('12.346');
    expect(formatScore(null)).toBe('-');
  });

  it('shows timestamps as UTC date and time', () => {
    expect(formatTime('2026-11-21T08:54:02.567Z')).toBe('2026-11-21 08:54:02');
    expect(formatTime(null)).toBe('-');
  });
});

describe('escapeTerminal', () => {
  it('shows every character a terminal acts on as \\uXXXX and leaves newlines, tabs and text alone', () => {
    expect(escapeTerminal('a\u001b[2Jb\u009b1m\u007f\u202e\u2066\r\u2028é█\n\tz')).toBe('a\\u001b[2Jb\\u009b1m\\u007f\\u202e\\u2066\\u000d\\u2028é█\n\tz');
  });

  it('is idempotent and keeps JSON the same value', () => {
    const text = JSON.stringify({ n: 'x\u007f\u0085\u202ey' });
    expect(escapeTerminal(escapeTerminal(text))).toBe(escapeTerminal(text));
    expect(JSON.parse(escapeTerminal(text))).toEqual({ n: 'x\u007f\u0085\u202ey' });
  });

  it('escapes what is written through safeStream but not the CLI\'s own control sequences', () => {
    let text = '';
    const out = safeStream({ isTTY: true, write: (t) => { text += t; } });
    writeControl(out, '\r\u001b[2K');
    out.write('v\u001b[2J\n');
    expect(text).toBe('\r\u001b[2Kv\\u001b[2J\n');
  });
});
