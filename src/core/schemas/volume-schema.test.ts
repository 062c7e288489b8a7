import { describe, expect, it } from 'vitest';
import { StowageError } from '../errors.js';
import { createVolumeInput, isClone, sizeIsMissing } from './volume-schema.js';

describe('the create-volume size rule', () => {
  it('requires a size unless the volume is a clone', () => {
    expect(sizeIsMissing({})).toBe(true);
    expect(sizeIsMissing({ sizeBytes: 1 })).toBe(false);
    expect(sizeIsMissing({ fromSnapshot: 's1' })).toBe(false);
    expect(sizeIsMissing({ fromVolume: 'v1' })).toBe(false);
    expect(isClone({ fromVolume: 'v1' })).toBe(true);
    expect(isClone({})).toBe(false);
  });

  it('maps a request to the service input: a clone without a size gets 0 (its source\'s size), a plain create without one is refused', () => {
    expect(createVolumeInput({ name: 'c', fromVolume: 'v1' })).toEqual({ name: 'c', fromVolume: 'v1', sizeBytes: 0 });
    expect(createVolumeInput({ name: 'p', sizeBytes: 5 })).toEqual({ name: 'p', sizeBytes: 5 });
    let err: unknown;
    try {
      createVolumeInput({ name: 'p' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StowageError);
    expect(err).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'sizeBytes' } });
  });
});
