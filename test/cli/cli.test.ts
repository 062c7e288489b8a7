import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DryRunResponseT, VolumeWithOperationT } from '../../src/cli/client.js';
import type { Backend } from '../../src/core/schemas/backend-schema.js';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import type { StowageEvent } from '../../src/core/schemas/event-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { CliSession, closedPort, type RunningCli } from './cli-harness.js';

const MiB = 1024 ** 2;

describe('stowage CLI against a real server', () => {
  let s: CliSession;
  let b2Dir: string;
  const b2 = `b2-${process.pid}`;

  beforeAll(async () => {
    s = await CliSession.start();
    b2Dir = join(s.dir, 'b2-volumes');
    mkdirSync(b2Dir);
  });
  afterAll(async () => {
    await s.stop();
  });

  it('registers a second dir backend and lists both (table and JSON)', async () => {
    const created = await s.run(['backend', 'create', b2, '--driver', `dir://${b2Dir}`, '--cost', '5', '--tag', 'ssd', '--zone', 'z1']);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(new RegExp(`Name:\\s+${b2}`));
    expect(created.stdout).toMatch(/State:\s+enabled/);

    const table = await s.run(['backend', 'list']);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+STATE/);
    expect(table.stdout).toMatch(/^local\s+enabled/m);
    // NODE is `-`: the backend's driver runs in the control plane.
    expect(table.stdout).toMatch(new RegExp(`^${b2}\\s+enabled\\s+primary\\s+-\\s+dir://`, 'm'));

    const items = await s.json<Backend[]>(['backend', 'list']);
    expect(items.map((b) => b.name).sort()).toEqual([b2, 'local'].sort());
    const mine = items.find((b) => b.name === b2);
    expect(mine?.cost).toBe(5);
    expect(mine?.tags).toEqual(['ssd']);
    expect(mine?.capacity.totalBytes).toBeGreaterThan(0);
  });

  it('prints one capacity snapshot with `backend top --once`', async () => {
    const r = await s.run(['backend', 'top', '--once']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^NAME\s+STATE\s+USED\s+TOTAL\s+FREE\s+PROVISIONED\s+USABLE\s+VOLUMES\s+PROBED/);
    expect(r.stdout).toMatch(new RegExp(`^${b2}\\s+enabled\\s+\\[[█░]{10}\\]\\s+\\d+%`, 'm'));
    expect(r.stdout).not.toContain('\x1b[');
    expect((await s.json<Backend[]>(['backend', 'top', '--once'])).length).toBe(2);
  });

  it('prints JSON lines from `backend top` when stdout is not a terminal, until Ctrl-C', async () => {
    const top = s.start(['backend', 'top', '--interval', '100ms']);
    await top.waitForOutput((out) => out.split('\n').length > 2);
    const end = await top.interrupt();
    expect(end.code).toBe(0);
    const lines = end.stdout.trim().split('\n').map((l) => JSON.parse(l) as { at: string; backends: Backend[] });
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines[0]?.backends.map((b) => b.name)).toContain(b2);
  });

  it('creates volumes on chosen backends, lists, resizes and shows them', async () => {
    const v1 = await s.run(['volume', 'create', 'v1', '--size', '64M', '--backend', b2]);
    expect(v1.code).toBe(0);
    expect(v1.stdout).toMatch(/State:\s+available/);
    expect(v1.stdout).toMatch(/Size:\s+64 MiB \(67108864 bytes\)/);
    expect(v1.stderr).toMatch(/volume\.create v1 succeeded/);
    expect(readdirSync(b2Dir).some((f) => f.endsWith('.raw'))).toBe(true);

    const v2 = await s.json<Volume>(['volume', 'create', 'v2', '--size', '32MiB', '--backend', 'local', '--format', 'raw']);
    expect(v2).toMatchObject({ name: 'v2', state: 'available', sizeBytes: 32 * MiB, backendName: 'local' });

    const list = await s.run(['volume', 'list']);
    expect(list.stdout.split('\n')[0]).toMatch(/^NAME\s+ID\s+STATE\s+SIZE\s+BACKEND\s+CREATED/);
    expect(list.stdout).toMatch(new RegExp(`^v1\\s+vol-\\S+\\s+available\\s+64 MiB\\s+${b2}\\s`, 'm'));
    expect(list.stdout).toMatch(/^v2\s+vol-\S+\s+available\s+32 MiB\s+local\s/m);
    const onB2 = await s.json<Volume[]>(['volume', 'list', '--backend', b2]);
    expect(onB2.map((v) => v.name)).toEqual(['v1']);

    const resized = await s.run(['volume', 'resize', 'v1', '--size', '128M']);
    expect(resized.code).toBe(0);
    expect(resized.stdout).toMatch(/Size:\s+128 MiB/);
    expect((await s.json<Volume>(['volume', 'show', 'v1'])).sizeBytes).toBe(128 * MiB);

    const shown = await s.run(['volume', 'show', 'v1']);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/Placement:\s+\S+/);
    expect(shown.stdout).toContain(`pinned to ${b2} by request`);
    expect(shown.stdout).toMatch(/Considered \d+ backends?/);
    expect(shown.stdout).toContain('Rejected:');
    expect(shown.stdout).toMatch(new RegExp(`Top candidates: 1\\. ${b2} \\(score `));
    expect(shown.stdout).toContain('Attempts:');
  });

  it('explains placement with --dry-run and creates nothing', async () => {
    const r = await s.run(['volume', 'create', 'v3', '--size', '1G', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/BACKEND\s+VERDICT\s+FILTER\s+REASON\s+USABLE\s+COST\s+SCORE/);
    expect(r.stdout).toMatch(/\* local\s+passed/);
    expect(r.stdout).toMatch(new RegExp(`${b2}\\s+passed`));
    expect(r.stdout).toMatch(/^Winner: local$/m);
    expect(r.stdout).toMatch(/^Reason: local won among 2 of 2 backends/m);

    const tagged = await s.json<DryRunResponseT>(['volume', 'create', 'v3', '--size', '1G', '--tag', 'ssd', '--dry-run']);
    expect(tagged.winner).toBe(b2);
    expect(tagged.verdicts.find((v) => v.backend === 'local')).toMatchObject({ passed: false });

    const none = await s.run(['volume', 'create', 'v3', '--size', '1G', '--tag', 'no-such-tag', '--dry-run']);
    expect(none.stdout).toMatch(/rejected/);
    expect(none.stdout).toMatch(/^Winner: none/m);

    const missing = await s.run(['volume', 'show', 'v3']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^VOLUME_NOT_FOUND: /);
  });

  it('submits with --no-wait and then waits with `operation wait`', async () => {
    const res = await s.json<VolumeWithOperationT>(['volume', 'create', 'v4', '--size', '16M', '--no-wait']);
    expect(res.volume.name).toBe('v4');
    const opId = res.operation.id;
    const waited = await s.run(['operation', 'wait', opId, '--timeout', '1m']);
    expect(waited.code).toBe(0);
    expect(waited.stdout).toMatch(/State:\s+succeeded/);
    expect(waited.stdout).toMatch(/Steps done:\s+\S/);

    const ops = await s.json<Operation[]>(['operation', 'list', '--state', 'succeeded']);
    expect(ops.map((o) => o.id)).toContain(opId);
    const shown = await s.run(['operation', 'show', opId]);
    expect(shown.stdout).toMatch(/Kind:\s+volume\.create/);
    const table = await s.run(['operation', 'list']);
    expect(table.stdout).toMatch(new RegExp(`^${opId}\\s+volume\\.create\\s+${res.volume.id}\\s+succeeded`, 'm'));
  });

  it('reports a failed operation as code: message with a non-zero exit', async () => {
    // A clone whose source file vanished behind the server's back: the backend still probes fine,
    // so placement takes the request and its copy step fails. (A removed directory is no good here:
    // the background reprobe after the registration may already have marked the backend offline, and
    // then placement refuses at submit, with no operation.)
    const goneDir = join(s.dir, 'gone');
    mkdirSync(goneDir);
    expect((await s.run(['backend', 'create', 'gone', '--driver', `dir://${goneDir}`])).code).toBe(0);
    expect((await s.run(['volume', 'create', 'vanishing', '--size', '1M', '--backend', 'gone'])).code).toBe(0);
    const files = readdirSync(goneDir).filter((f) => f.endsWith('.raw'));
    expect(files).toHaveLength(1);
    for (const f of files) rmSync(join(goneDir, f));
    const r = await s.run(['volume', 'create', 'doomed', '--from-volume', 'vanishing', '--backend', 'gone']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/✗ volume\.create doomed failed/);

    const failed = await s.json<Operation[]>(['operation', 'list', '--state', 'failed']);
    const op = failed[0];
    expect(op?.error?.code).toBeTruthy();
    const printed = `${op?.error?.code ?? '?'}: ${op?.error?.message ?? '?'}`;
    expect(r.stderr).toContain(printed);
    const wait = await s.run(['operation', 'wait', op?.id ?? '']);
    expect(wait.code).toBe(1);
    expect(wait.stdout).toMatch(/State:\s+failed/);
    expect(wait.stderr).toContain(printed);

    // Keep the broken backend out of later placements.
    const disabled = await s.run(['backend', 'disable', 'gone']);
    expect(disabled.stdout).toMatch(/State:\s+disabled/);
  });

  it('lists events as a table and as JSON, filtered by resource name or type', async () => {
    const r = await s.run(['events', '--resource', 'v1']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^TIME\s+ACTOR\s+RESOURCE\s+ACTION\s+FROM → TO\s+MESSAGE/);
    expect(r.stdout).toMatch(/volume\/v1\s+created\s+creating → available/);
    expect(r.stdout).not.toContain('volume/v2');
    const backends = await s.json<StowageEvent[]>(['events', '--type', 'backend']);
    expect(backends.length).toBeGreaterThan(0);
    expect(backends.every((e) => e.resourceType === 'backend')).toBe(true);
    expect(backends.map((e) => e.seq)).toEqual([...backends.map((e) => e.seq)].sort((a, b) => a - b));
  });

  it('follows new events with --follow until Ctrl-C', async () => {
    const follow = s.start(['events', '--follow', '--type', 'volume', '--limit', '1']);
    await follow.waitForOutput((out) => out.startsWith('TIME'));
    expect((await s.run(['volume', 'create', 'v9', '--size', '1M'])).code).toBe(0);
    await follow.waitForOutput((out) => /volume\/v9\s+created\s+creating → available/.test(out));
    const end = await follow.interrupt();
    expect(end.code).toBe(0);
  });

  describe('errors', () => {
    it('rejects a bad size before any request (usage error, exit 2)', async () => {
      const r = await s.run(['volume', 'create', 'bad', '--size', '10Q']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('"10Q" is not a size');
      expect(r.stderr).toContain('--size');
      const resize = await s.run(['volume', 'resize', 'v1', '--size', '-5G']);
      expect(resize.code).toBe(2);
    });

    it('lists the known schemes for an unknown driver', async () => {
      const r = await s.run(['backend', 'create', 'x', '--driver', 'nfs://host/export']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^UNKNOWN_DRIVER: .*known schemes: .*dir:\/\//);
    });

    it('reports NAME_TAKEN for duplicate names', async () => {
      const vol = await s.run(['volume', 'create', 'v1', '--size', '1G']);
      expect(vol.code).toBe(1);
      expect(vol.stderr).toMatch(/^NAME_TAKEN: a volume named "v1" already exists/);
      const bk = await s.run(['backend', 'create', b2, '--driver', `dir://${b2Dir}`]);
      expect(bk.stderr).toMatch(/^NAME_TAKEN: /);
    });

    it('refuses to delete a backend that holds volumes, with the count', async () => {
      const r = await s.run(['backend', 'delete', b2]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^BACKEND_IN_USE: backend ${b2} still holds 1 volume`));
    });

    it('says UNAUTHORIZED and how to configure a token when none is set', async () => {
      const noToken = join(s.dir, 'no-token.json');
      writeFileSync(noToken, JSON.stringify({ url: s.server.url }));
      const r = await s.run(['volume', 'list'], { STOWAGE_CLI_CONFIG: noToken });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^UNAUTHORIZED: missing bearer token/);
      expect(r.stderr).toContain('no API token is configured');
      const bad = await s.run(['--token', 'stw_not-a-real-token', 'volume', 'list']);
      expect(bad.stderr).toMatch(/^UNAUTHORIZED: invalid API token/);
      expect(bad.stderr).not.toContain(s.token);
    });

    it('takes the URL and token from STOWAGE_URL and STOWAGE_TOKEN over the config file', async () => {
      const r = await s.run(['backend', 'list', '-o', 'json'], { STOWAGE_CLI_CONFIG: join(s.dir, 'absent.json'), STOWAGE_URL: s.server.url, STOWAGE_TOKEN: s.token });
      expect(r.code).toBe(0);
      expect(existsSync(join(s.dir, 'absent.json'))).toBe(false);
    });

    it('explains an unreachable API', async () => {
      const port = await closedPort();
      const r = await s.run(['--api', `http://127.0.0.1:${port}`, 'backend', 'list']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`cannot reach the Stowage API at http://127.0.0.1:${port}: is \`npm start\` running?`);
    });

    it('does not delete without --yes when stdin is not a terminal', async () => {
      const r = await s.run(['volume', 'delete', 'v2']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('--yes');
      expect((await s.json<Volume>(['volume', 'show', 'v2'])).state).toBe('available');
    });

    it('exits 2 with usage for unknown commands and options', async () => {
      expect((await s.run(['volume', 'explode'])).code).toBe(2);
      expect((await s.run(['volume', 'list', '--colour'])).code).toBe(2);
      expect((await s.run(['volume', 'list', '-o', 'xml'])).code).toBe(2);
    });
  });

  it('redraws progress and `backend top` in place on a terminal', async () => {
    const create = await s.runOnTerminal(['volume', 'create', 'vt', '--size', '1M']);
    expect(create.code).toBe(0);
    expect(create.stdout).toContain('\r\x1b[2K');
    expect(create.stdout).toMatch(/✓ volume\.create vt succeeded/);
    expect(create.stdout).toMatch(/State:\s+available/);

    const top = await s.runOnTerminal(['backend', 'top', '--interval', '100ms'], { interruptAfterMs: 3000 });
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('\x1b[?25l');
    expect(top.stdout).toMatch(/\x1b\[Hstowage backend top {2}http:\/\/127\.0\.0\.1:\d+/);
    expect(top.stdout).toMatch(new RegExp(`${b2}\\s+enabled\\s+\\[[█░]{10}\\]`));
    expect(top.stdout).toContain('\x1b[?25h');
  });

  it('deletes volumes and then the emptied backend', async () => {
    const r = await s.run(['volume', 'delete', 'v1', '--yes']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('volume v1 deleted\n');
    expect(readdirSync(b2Dir).some((f) => f.endsWith('.raw'))).toBe(false);
    const del = await s.run(['backend', 'delete', b2]);
    expect(del.code).toBe(0);
    expect((await s.json<Backend[]>(['backend', 'list'])).map((b) => b.name)).not.toContain(b2);
  });

  it('runs the control plane with `stowage serve`, whose first start configures the CLI', async () => {
    const dir = join(s.dir, 'serve');
    const config = join(dir, 'cli.json');
    // The CLI config the first start writes names the port, so it must be a real one (not 0): a port
    // found free may be taken before the server binds it, so a start that loses that race is retried.
    let server: RunningCli | undefined;
    for (let attempt = 0; attempt < 3 && server === undefined; attempt++) {
      const candidate = s.start(['serve'], {
        STOWAGE_DATA_DIR: join(dir, `data-${String(attempt)}`), STOWAGE_PORT: String(await closedPort()), STOWAGE_CLI_CONFIG: config,
        // Probes slowed to a minute so no probe changes a state mid-test; the probe on its shipped interval: test/defaults/backend-probe.ts.
        STOWAGE_LOG_LEVEL: 'silent', STOWAGE_PROBE_INTERVAL_MS: '60000',
      });
      try {
        await candidate.waitForOutput((out, err) => out.includes('Admin API token') && err.includes('stowage serve: ready'));
        server = candidate;
      } catch (err) {
        const result = await candidate.interrupt();
        if (!/EADDRINUSE/.test(result.stderr)) throw err;
      }
    }
    if (server === undefined) throw new Error('stowage serve lost the port race three times');
    try {
      const names = (JSON.parse((await s.run(['backend', 'list', '-o', 'json'], { STOWAGE_CLI_CONFIG: config })).stdout) as Backend[]).map((b) => b.name);
      expect(names).toEqual(['local']);
    } finally {
      expect((await server.interrupt()).code).toBe(0);
    }
  });

  it('deletes a tenant with `tenant delete --cascade --yes` as one operation; without --cascade one that owns a user is refused', async () => {
    expect((await s.run(['tenant', 'create', 'cli-doomed'])).code).toBe(0);
    expect((await s.run(['user', 'create', 'cli-doomed-ann', '--role', 'member', '--tenant', 'cli-doomed'])).code).toBe(0);
    const refused = await s.run(['tenant', 'delete', 'cli-doomed', '--yes']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/^TENANT_NOT_EMPTY: tenant cli-doomed still owns 1 users/m);
    expect((await s.run(['tenant', 'show', 'cli-doomed'])).code).toBe(0);

    const r = await s.run(['tenant', 'delete', 'cli-doomed', '--cascade', '--yes']);
    expect(r.code, r.stderr).toBe(0);
    const id = /operation (op-[a-z0-9]+)/.exec(r.stdout)?.[1];
    expect(id, r.stdout).toBeDefined();
    const waited = await s.run(['operation', 'wait', id ?? '']);
    expect(waited.code, waited.stderr).toBe(0);
    expect((await s.json<Operation>(['operation', 'show', id ?? ''])).state).toBe('succeeded');
    const gone = await s.run(['tenant', 'show', 'cli-doomed']);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toMatch(/^TENANT_NOT_FOUND: /m);
    expect((await s.run(['user', 'show', 'cli-doomed-ann'])).stderr).toMatch(/^USER_NOT_FOUND: /m);
  });

  it('shows help with examples', async () => {
    for (const args of [['--help'], ['volume', 'create', '--help'], ['backend', 'top', '--help'], ['events', '--help']]) {
      const r = await s.run(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('Examples:');
    }
  });
});
