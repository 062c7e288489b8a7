import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/server.js';
import { CliSession } from './cli-harness.js';

/**
 * Issue 8 point 6: walks every ```bash block of the README. Each `npx stowage …` line is run
 * with the built CLI against a real server (example paths swapped for temp ones), in README order;
 * the lines that need an iSCSI SAN and hypervisor hosts are parsed by the real CLI program (every
 * option, argument and value checked, the action not run). A line the CLI rejects fails the test,
 * and the test prints which lines it ran and which it only parsed.
 */

/** One README command line, split into words as a POSIX shell would (quotes, no expansion). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] ?? '';
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated quote in: ${line}`);
      cur += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      const end = line.indexOf('"', i + 1);
      if (end < 0) throw new Error(`unterminated quote in: ${line}`);
      cur += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '#' && !inWord) {
      break;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** The command lines of every ```bash block, with the block they are in. */
function readmeCommands(): { block: number; line: string }[] {
  const text = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const out: { block: number; line: string }[] = [];
  let block = 0;
  for (const m of text.matchAll(/```bash\n([\s\S]*?)```/g)) {
    block++;
    for (const raw of (m[1] ?? '').split('\n')) {
      const line = raw.trim();
      if (line !== '' && !line.startsWith('#')) out.push({ block, line });
    }
  }
  return out;
}

/**
 * The README lines that need what a test server has not got: an iSCSI SAN behind the example
 * address and hypervisor hosts with agents and VMs (the lab tiers run these paths with real tgtd,
 * agents and QEMU). They are parsed, not run. Keyed by the words after `npx stowage`.
 */
const PARSE_ONLY: Readonly<Record<string, string>> = {
  'backend create san': 'the example SAN (tgtd at 10.0.0.1) does not exist here',
  'volume grant db1': 'needs db1 on an iSCSI backend',
  'volume revoke db1': 'needs db1 on an iSCSI backend',
  'snapshot create db1': 'needs db1 (deleted by the session above) on the SAN',
  'volume create db1-copy': 'clones the SAN snapshot',
  'volume create db1-elsewhere': 'needs db1 on the SAN and a backend named slow (test/cli/readme-paths.test.ts runs this clone)',
  'volume revert db1': 'needs the SAN snapshot',
  agent: 'an agent on a real hypervisor',
  'volume attach db1': 'needs a running agent and VM on hv1',
  'migration start': 'needs agents and VMs on hv1 and hv2',
  'migration complete': 'needs agents and VMs on hv1 and hv2',
  'host fence hv1': 'needs an attached host',
  'host evacuate hv1': 'needs a fenced host and hv2',
  // "A fleet": storage nodes and hypervisors (run for real by test/e2e-fleet/fleet.test.ts).
  'node create': 'registers a storage server of the example fleet',
  'node run': 'runs on a storage server of the example fleet',
  'node list': 'lists the example fleet\'s nodes',
  'node top': 'a live table of the example fleet\'s nodes',
  'node drain': 'needs node sn1',
  'backend create ssd1': 'needs storage node sn2 and its tgtd',
  'backend create hdd1': 'needs storage node sn1 and its tgtd',
  'host create hv2': 'a hypervisor of the example fleet',
  'volume create web1': 'needs the fleet\'s backends (the copy: a node-to-node stream)',
  'volume create logs1': 'needs the fleet\'s backends',
  'volume attach web1': 'needs agents and VMs on the fleet\'s hypervisors',
  'volume attach logs1': 'needs agents and VMs on the fleet\'s hypervisors',
};

/** Swaps README example paths for ones inside the test's temp dir. */
function substitute(words: readonly string[], root: string): string[] {
  return words.map((w) => w.replace(/^dir:\/\/\/srv\//, `dir://${root}/srv/`));
}

/**
 * Parses `args` with the built CLI program (dist/cli/program.js, what bin/stowage.js runs) in a
 * child node, stopping at a preAction hook right before the command's action: every option,
 * argument and value is checked, nothing is sent. Resolves with the command reached.
 */
async function parseOnly(args: readonly string[]): Promise<string> {
  const program = pathToFileURL(join(REPO_ROOT, 'dist', 'cli', 'program.js')).href;
  const context = pathToFileURL(join(REPO_ROOT, 'dist', 'cli', 'context.js')).href;
  const script = `
    import { buildProgram } from ${JSON.stringify(program)};
    import { processContext } from ${JSON.stringify(context)};
    const p = await buildProgram(processContext());
    const parsed = new Error('parsed');
    let reached = '';
    p.hook('preAction', (_top, action) => { reached = action.name(); throw parsed; });
    try {
      await p.parseAsync(process.argv.slice(1), { from: 'user' });
      process.stdout.write('NO-ACTION');
      process.exitCode = 3;
    } catch (err) {
      if (err === parsed) process.stdout.write('PARSED ' + reached);
      else { process.stderr.write(String(err?.message ?? err)); process.exitCode = 2; }
    }`;
  // Asynchronously: the server under test runs in this very process and must keep answering.
  const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, '--', ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir() }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('close', (status) => { resolve({ status, stdout, stderr }); });
  });
  const m = /^PARSED (\S+)$/.exec(r.stdout);
  if (r.status !== 0 || m?.[1] === undefined) throw new Error(`the CLI rejects \`stowage ${args.join(' ')}\` (exit ${String(r.status)}): ${r.stdout} ${r.stderr}`);
  return m[1];
}

describe('the README\'s command blocks', () => {
  let s: CliSession;

  beforeAll(async () => {
    s = await CliSession.start({ operationPollMs: 20 });
    mkdirSync(join(s.dir, 'srv', 'fast'), { recursive: true });
  });

  afterAll(async () => {
    await s?.stop();
  });

  it('runs every `npx stowage` line it can against a real server, parses the rest, and the CLI accepts them all', async () => {
    const lines = readmeCommands();
    const ran: string[] = [];
    const parsed: string[] = [];
    const other: string[] = [];
    const parseOnlyUsed = new Set<string>();
    for (const { line } of lines) {
      const words = shellWords(line);
      if (words[0] !== 'npx' || words[1] !== 'stowage') {
        other.push(line);
        continue;
      }
      const args = substitute(words.slice(2), s.dir);
      const key = Object.keys(PARSE_ONLY).find((k) => args.join(' ').startsWith(k));
      if (key !== undefined) {
        parseOnlyUsed.add(key);
        await parseOnly(args);
        parsed.push(`${line}    (${PARSE_ONLY[key] ?? ''})`);
        continue;
      }
      if (args[0] === 'backend' && args[1] === 'top') {
        // A live table until Ctrl-C: run it until it has drawn the backends, then interrupt it.
        await parseOnly(args);
        const top = s.start(args);
        await top.waitForOutput((out) => out.includes('fast') && out.includes('local'), 60_000);
        const r = await top.interrupt();
        expect(r.stderr).not.toMatch(/error|INTERNAL/i);
        ran.push(`${line}    (until Ctrl-C)`);
        continue;
      }
      const r = await s.run(args);
      if (r.code !== 0) throw new Error(`README line \`${line}\` exited ${String(r.code)}:\n${r.stdout}\n${r.stderr}`);
      ran.push(line);
    }
    console.info(`README commands run against a real server:\n  ${ran.join('\n  ')}\nparsed only:\n  ${parsed.join('\n  ')}\nnot stowage commands:\n  ${other.join('\n  ')}`);
    // Every parse-only entry names a README line (a stale entry would silently stop a line running).
    expect([...parseOnlyUsed].sort()).toEqual(Object.keys(PARSE_ONLY).sort());
    expect(ran.length).toBeGreaterThanOrEqual(13);
    // Only `npm ci && npm start|test` are not stowage commands (npm start's defaults: readme-paths.test.ts).
    expect(other.map((l) => shellWords(l).join(' '))).toEqual(['npm ci && npm start', 'npm ci && npm test']);
    // What the session did is really there: db1 went through create, resize and delete.
    const ops = await s.json<{ items: { kind: string; state: string }[] } | { kind: string; state: string }[]>(['operation', 'list']);
    const items = Array.isArray(ops) ? ops : ops.items;
    for (const kind of ['volume.create', 'volume.resize', 'volume.delete']) expect(items.some((o) => o.kind === kind && o.state === 'succeeded')).toBe(true);
    // "Tenants": each user created its own `web` and lists only that one; the admin sees both.
    const listOf = async (tokenFile: string) => (await s.json<{ name: string; sizeBytes: number; tenantId: string }[]>(['--token-file', tokenFile, 'volume', 'list']));
    const [alices, gils] = [await listOf('alice.token'), await listOf('gil.token')];
    expect(alices.map((v) => [v.name, v.sizeBytes])).toEqual([['web', 1024 ** 3]]);
    expect(gils.map((v) => [v.name, v.sizeBytes])).toEqual([['web', 2 * 1024 ** 3]]);
    expect(alices[0]?.tenantId).not.toBe(gils[0]?.tenantId);
    const every = await s.json<{ name: string; tenantId: string }[]>(['volume', 'list', '--all-tenants']);
    expect(every.filter((v) => v.name === 'web').map((v) => v.tenantId).sort()).toEqual([alices[0]?.tenantId, gils[0]?.tenantId].sort());
    expect((await s.run(['--token-file', 'gil.token', 'volume', 'list', '--all-tenants'])).code).not.toBe(0);
  }, 300_000); // every parsed line is a node child of its own (~45 of them): on a loaded 2-core machine that outgrows the default 120 s

  it('the CLI program really rejects a bad line when only parsing', async () => {
    await expect(parseOnly(['volume', 'grant', 'db1'])).rejects.toThrow(/--host/);
    await expect(parseOnly(['volume', 'create', 'x', '--size', 'lots'])).rejects.toThrow(/size/i);
    await expect(parseOnly(['volume', 'create', 'x', '--size', '1G'])).resolves.toBe('create');
  });
});
