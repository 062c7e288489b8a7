import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliSession, REPO_ROOT, ensureCliBuilt } from './cli-harness.js';

/** Characters a terminal would act on: C0 except \n and \t, DEL, C1, bidi overrides and isolates. */
const ACTIVE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/** Clears the screen, sets red through the C1 CSI, and reverses the rest of the line. */
const HOSTILE = 'db\u001b[2J\u009b31m\u202eevil\u007f';

describe('the CLI never lets API text drive the terminal', () => {
  let s: CliSession;
  beforeAll(async () => { s = await CliSession.start(); });
  afterAll(async () => { await s.stop(); });

  it('escapes control characters in show views and tables, and keeps -o json exact', async () => {
    const created = await s.run(['class', 'create', 'hostile', '--description', HOSTILE]);
    expect(created.code).toBe(0);
    for (const args of [['class', 'show', 'hostile'], ['class', 'list'], ['events']]) {
      const r = await s.run(args);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toMatch(ACTIVE);
      expect(r.stderr).not.toMatch(ACTIVE);
    }
    const shown = await s.run(['class', 'show', 'hostile']);
    expect(shown.stdout).toContain('db\\u001b[2J\\u009b31m\\u202eevil\\u007f');
    const json = await s.run(['class', 'show', 'hostile', '-o', 'json']);
    expect(json.stdout).not.toMatch(ACTIVE);
    expect((JSON.parse(json.stdout) as { description: string }).description).toBe(HOSTILE);
  });

  it('escapes control characters in error lines', async () => {
    const r = await s.run(['volume', 'show', 'x\u001b[2J\u001b]0;pwned\u0007']);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(ACTIVE);
    expect(r.stderr).toContain('\\u001b[2J');
  });
});

describe('a reader that closes early', () => {
  it('ends `stowage volume create --help` quietly, without an EPIPE stack trace', async () => {
    await ensureCliBuilt();
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'stowage.js'), 'volume', 'create', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Closing our end before the CLI has started makes its first write hit a closed pipe (what `| head` does).
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const code = await new Promise<number | null>((resolve) => { child.on('close', (c) => { resolve(c); }); });
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});
