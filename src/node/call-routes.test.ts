import { describe, expect, it } from 'vitest';
import { NODE_CALLABLE } from '../nodes/node-calls.js';
import { parseNodeCall, redactArgs } from './call-routes.js';

const backend = { id: 'bk-1', name: 'b1', uri: 'dir:///srv/v', options: { format: 'raw' } };

describe('parseNodeCall (the node checks every call before a driver sees it)', () => {
  it('accepts each allowed method with arguments of the right kinds', () => {
    const sample = { object: {}, 'object-or-null': null, array: [], string: 's', number: 1 } as const;
    for (const [target, methods] of Object.entries(NODE_CALLABLE)) {
      for (const [method, kinds] of Object.entries(methods as Record<string, readonly (keyof typeof sample)[]>)) {
        const args = kinds.map((k) => sample[k]);
        expect(parseNodeCall({ backend, target, method, args }), `${target}.${method}`).toEqual({ backend, target, method, args });
      }
    }
  });

  it('refuses what is not on the allow-list with FORBIDDEN, and malformed calls with VALIDATION_FAILED', () => {
    const code = (body: unknown): string => {
      try { parseNodeCall(body); return 'ACCEPTED'; } catch (err) { return (err as { code: string }).code; }
    };
    expect(code({ backend, target: 'data', method: 'locate', args: [{}] })).toBe('FORBIDDEN');
    expect(code({ backend, target: 'driver', method: 'close', args: [] })).toBe('FORBIDDEN');
    expect(code({ backend, target: 'driver', method: '__proto__', args: [] })).toBe('FORBIDDEN');
    expect(code({ backend, target: 'driver', method: 'toString', args: [] })).toBe('FORBIDDEN');
    expect(code({ backend, target: 'access', method: 'grant', args: [{}] })).toBe('VALIDATION_FAILED');
    expect(code({ backend, target: 'access', method: 'grant', args: [{}, []] })).toBe('VALIDATION_FAILED');
    expect(code({ backend, target: 'driver', method: 'resizeVolume', args: [{}, Number.NaN] })).toBe('VALIDATION_FAILED');
    expect(code({ backend: { ...backend, id: '' }, target: 'driver', method: 'probe', args: [] })).toBe('VALIDATION_FAILED');
    expect(code({ backend: { ...backend, extra: 1 }, target: 'driver', method: 'probe', args: [] })).toBe('VALIDATION_FAILED');
    expect(code({ backend, target: 'driver', method: 'probe' })).toBe('VALIDATION_FAILED');
    expect(code([])).toBe('VALIDATION_FAILED');
  });
});

describe('redactArgs', () => {
  it('replaces secrets wherever they sit, and keeps the rest for the log', () => {
    const grant = { host: { name: 'h1', addresses: ['10.0.0.1'] }, mode: 'rw', chap: { user: 'u', secret: 's3cret' } };
    expect(redactArgs([{ id: 'v' }, grant])).toEqual([{ id: 'v' }, { ...grant, chap: { user: 'u', secret: '[redacted]' } }]);
    expect(JSON.stringify(redactArgs([[{ handle: {}, grants: [grant] }], null]))).not.toContain('s3cret');
  });
});
