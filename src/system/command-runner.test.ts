import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CommandFailedError, formatCommand, OUTPUT_CAP_BYTES, redact, SpawnCommandRunner } from './command-runner.js';

const runner = new SpawnCommandRunner();

async function failure(promise: Promise<unknown>): Promise<CommandFailedError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof CommandFailedError) return err;
    throw err;
  }
  throw new Error('expected the command to fail');
}

/** True while `pid` is a live (non-zombie) process. */
function isAlive(pid: number): boolean {
  if (!existsSync(`/proc/${String(pid)}`)) return false;
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

/** Waits (bounded) for `pid` to go away; the result, not the time taken, is what tests check. */
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 100 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  return !isAlive(pid);
}

describe('SpawnCommandRunner', () => {
  it('passes argv literally: shell metacharacters are never interpreted', async () => {
    const tricky = ['$(id);x', '`id`', 'a && b', '*', '; rm -rf /tmp/nothing', "it's \"quoted\"", 'line1\nline2', '$HOME', '> /tmp/x', '|cat'];
    for (const arg of tricky) {
      const { stdout, exitCode } = await runner.run('printf', ['%s', arg]);
      expect(stdout, arg).toBe(arg);
      expect(exitCode).toBe(0);
    }
    const { stdout } = await runner.run('printf', ['%s|', ...tricky]);
    expect(stdout).toBe(tricky.map((a) => `${a}|`).join(''));
  });

  it('sets LC_ALL=C, merges extra env, runs in cwd and feeds input to stdin', async () => {
    expect((await runner.run('sh', ['-c', 'printf %s "$LC_ALL"'], { env: { LC_ALL: 'de_DE.UTF-8' } })).stdout).toBe('C');
    expect((await runner.run('sh', ['-c', 'printf %s "$STOWAGE_T"'], { env: { STOWAGE_T: 'v1' } })).stdout).toBe('v1');
    expect((await runner.run('pwd', [], { cwd: '/proc' })).stdout.trim()).toBe('/proc');
    expect((await runner.run('cat', [], { input: 'from stdin\n' })).stdout).toBe('from stdin\n');
  });

  it('gives CommandFailedError with exit code, command line and the last lines of stderr', async () => {
    const script = 'echo partial-out; for i in 1 2 3 4 5 6 7 8 9 10; do echo "err line $i" >&2; done; exit 3';
    const err = await failure(runner.run('sh', ['-c', script]));
    expect(err.exitCode).toBe(3);
    expect(err.timedOut).toBe(false);
    expect(err.stdout).toBe('partial-out\n');
    expect(err.stderrTail.split('\n')).toEqual(['err line 3', 'err line 4', 'err line 5', 'err line 6', 'err line 7', 'err line 8', 'err line 9', 'err line 10']);
    expect(err.command).toBe(`sh -c '${script}'`);
    expect(err.message).toContain('exited with code 3');
    expect(err.message).toContain('err line 10');
    expect(err.message).not.toContain('err line 2\n');
  });

  it('accepts extra ok exit codes', async () => {
    expect((await runner.run('sh', ['-c', 'exit 107'], { okExitCodes: [0, 107] })).exitCode).toBe(107);
  });

  it('reports a program that cannot start', async () => {
    const err = await failure(runner.run('/nonexistent/stowage-no-such-program', ['x']));
    expect(err.exitCode).toBeNull();
    expect(err.message).toContain('could not start');
    expect(err.message).toContain('ENOENT');
  });

  it('kills a command that runs past its timeout', async () => {
    let pid: number | undefined;
    const err = await failure(runner.run('sh', ['-c', 'echo $$; exec sleep 100'], { timeoutMs: 300, onOutput: (c) => { pid ??= Number(c.trim()); } }));
    expect(err.timedOut).toBe(true);
    expect(err.message).toContain('timed out');
    expect(pid).toBeGreaterThan(0);
    expect(await gone(pid ?? 0)).toBe(true);
  });

  it('on timeout also kills what the command started (the whole process group)', async () => {
    let grandchild: number | undefined;
    const script = 'sleep 100 >/dev/null 2>&1 & echo $!; wait';
    try {
      const err = await failure(runner.run('sh', ['-c', script], { timeoutMs: 300, onOutput: (c) => { grandchild ??= Number(c.trim()); } }));
      expect(err.timedOut).toBe(true);
      expect(grandchild).toBeGreaterThan(0);
      expect(await gone(grandchild ?? 0)).toBe(true);
    } finally {
      if (grandchild !== undefined && isAlive(grandchild)) process.kill(grandchild, 'SIGKILL');
    }
  });

  it('stops a command when its signal aborts, and does not start one with an aborted signal', async () => {
    const ac = new AbortController();
    let pid: number | undefined;
    const running = runner.run('sh', ['-c', 'echo $$; exec sleep 100'], {
      signal: ac.signal,
      onOutput: (c) => { pid ??= Number(c.trim()); ac.abort(); },
    });
    const err = await failure(running);
    expect(err.timedOut).toBe(false);
    expect(err.message).toContain('was cancelled');
    expect(await gone(pid ?? 0)).toBe(true);

    const marker = `/tmp/stowage-runner-${String(process.pid)}-should-not-exist`;
    const pre = await failure(runner.run('touch', [marker], { signal: ac.signal }));
    expect(pre.message).toContain('was cancelled');
    expect(existsSync(marker)).toBe(false);
  });

  it('redacts secrets from stdout, stderr, the command line and the error message', async () => {
    const secret = 'chap-S3cr3t-value';
    const ok = await runner.run('sh', ['-c', `printf 'user=%s\\n' "$1"; printf '%s\\n' "$1" >&2`, 'sh', secret], { secrets: [secret] });
    expect(ok.stdout).toBe('user=***\n');
    expect(ok.stderr).toBe('***\n');

    const err = await failure(runner.run('sh', ['-c', `echo "got $1"; echo "bad secret $1" >&2; exit 1`, 'sh', secret], { secrets: [secret, ''] }));
    for (const text of [err.message, err.command, err.stderrTail, err.stdout, String(err.stack)]) expect(text).not.toContain(secret);
    expect(err.stderrTail).toBe('bad secret ***');
    expect(err.stdout).toBe('got ***\n');
    expect(err.command).toContain('***');
  });

  it('caps captured output', async () => {
    const { stdout } = await runner.run('head', ['-c', String(OUTPUT_CAP_BYTES + 2 * 1024 * 1024), '/dev/zero']);
    expect(stdout.length).toBeGreaterThanOrEqual(OUTPUT_CAP_BYTES);
    expect(stdout.length).toBeLessThan(OUTPUT_CAP_BYTES + 2 * 1024 * 1024);
  });
});

describe('formatCommand and redact', () => {
  it('quotes only what needs quoting, for display', () => {
    expect(formatCommand('qemu-img', ['info', '-f', 'qcow2', '/srv/v/vol-a.qcow2'])).toBe('qemu-img info -f qcow2 /srv/v/vol-a.qcow2');
    expect(formatCommand('printf', ['%s', "it's $(id)"])).toBe(`printf %s 'it'\\''s $(id)'`);
    expect(formatCommand('iscsi', ['iscsi://u%pw@h/x'], ['pw'])).toBe('iscsi iscsi://u%***@h/x');
  });

  it('replaces every occurrence of every non-empty secret', () => {
    expect(redact('a-s1-b-s1-c-s2', ['s1', 's2', ''])).toBe('a-***-b-***-c-***');
    expect(redact('nothing here')).toBe('nothing here');
  });
});
