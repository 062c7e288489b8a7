import { StowageError } from '../../src/core/errors.js';

/** The code `p` fails with (a StowageError's), or `RESOLVED` when it does not fail; any other error is rethrown. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof StowageError) return err.code;
    throw err;
  }
  return 'RESOLVED';
}
