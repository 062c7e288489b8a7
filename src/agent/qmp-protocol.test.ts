import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCommand, parseQmpLine, QmpProtocolError, splitLines } from './qmp-protocol.js';

describe('splitLines', () => {
  it('returns complete lines and keeps the unfinished rest', () => {
    expect(splitLines('{"a":1}\n{"b":2}\n{"c"')).toEqual({ lines: ['{"a":1}', '{"b":2}'], rest: '{"c"' });
    expect(splitLines('\r\n\n{"a":1}\r\n')).toEqual({ lines: ['{"a":1}'], rest: '' });
    expect(splitLines('')).toEqual({ lines: [], rest: '' });
  });

  it('yields the same lines however the stream is chunked', () => {
    fc.assert(fc.property(fc.array(fc.json(), { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (docs, cuts) => {
      const stream = docs.map((d) => `${JSON.stringify(JSON.parse(d))}\n`).join('');
      const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
      let buffer = '';
      const got: string[] = [];
      let last = 0;
      for (const p of [...points, stream.length]) {
        const { lines, rest } = splitLines(buffer + stream.slice(last, p));
        got.push(...lines);
        buffer = rest;
        last = p;
      }
      expect(buffer).toBe('');
      expect(got).toEqual(docs.map((d) => JSON.stringify(JSON.parse(d))));
    }));
  });
});

describe('parseQmpLine', () => {
  it('parses the greeting QEMU 7.2 sends', () => {
    const line = '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}';
    expect(parseQmpLine(line)).toEqual({ kind: 'greeting', version: { major: 7, minor: 2, micro: 22 }, capabilities: ['oob'] });
  });

  it('parses returns with and without ids', () => {
    expect(parseQmpLine('{"return": {}, "id": "stw1-3"}')).toEqual({ kind: 'return', id: 'stw1-3', value: {} });
    expect(parseQmpLine('{"return": [1, 2]}')).toEqual({ kind: 'return', id: undefined, value: [1, 2] });
    expect(parseQmpLine('{"return": null, "id": 7}')).toEqual({ kind: 'return', id: '7', value: null });
  });

  it('parses error replies with class and description', () => {
    expect(parseQmpLine('{"id": "x-1", "error": {"class": "DeviceNotFound", "desc": "Device \'stw-dev-x\' not found"}}'))
      .toEqual({ kind: 'error', id: 'x-1', errorClass: 'DeviceNotFound', desc: "Device 'stw-dev-x' not found" });
    expect(parseQmpLine('{"error": {}}')).toEqual({ kind: 'error', id: undefined, errorClass: 'GenericError', desc: 'no description' });
  });

  it('parses events with their timestamp in milliseconds', () => {
    const line = '{"timestamp": {"seconds": 1795251217, "microseconds": 950175}, "event": "DEVICE_DELETED", "data": {"device": "stw-dev-vol-a", "path": "/machine/peripheral/stw-dev-vol-a"}}';
    expect(parseQmpLine(line)).toEqual({ kind: 'event', event: 'DEVICE_DELETED', data: { device: 'stw-dev-vol-a', path: '/machine/peripheral/stw-dev-vol-a' }, timestampMs: 1795251217950 });
    expect(parseQmpLine('{"event": "STOP"}')).toEqual({ kind: 'event', event: 'STOP', data: {}, timestampMs: 0 });
  });

  it('rejects lines that are not QMP, without echoing them', () => {
    expect(() => parseQmpLine('{"data": "s3cret"')).toThrow(QmpProtocolError);
    expect(() => parseQmpLine('{"data": "s3cret"')).not.toThrow(/s3cret/);
    expect(() => parseQmpLine('[1]')).toThrow(/not an object/);
    expect(() => parseQmpLine('{"foo": 1}')).toThrow(/unknown keys: foo/);
  });
});

describe('encodeCommand', () => {
  it('puts execute, arguments and id on one line', () => {
    expect(encodeCommand('device_del', { id: 'stw-dev-a' }, 'p-1')).toBe('{"execute":"device_del","arguments":{"id":"stw-dev-a"},"id":"p-1"}\n');
    expect(encodeCommand('query-status', undefined, 'p-2')).toBe('{"execute":"query-status","id":"p-2"}\n');
  });

  it('keeps newlines inside strings escaped so a command is always one line', () => {
    fc.assert(fc.property(fc.string(), (s) => {
      const line = encodeCommand('x', { v: s }, 'i');
      expect(line.indexOf('\n')).toBe(line.length - 1);
    }));
  });
});
