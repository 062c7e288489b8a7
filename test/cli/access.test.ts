import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Attachment } from '../../src/core/schemas/attachment-schema.js';
import type { Backend } from '../../src/core/schemas/backend-schema.js';
import type { ConnectionInfoModel, Grant } from '../../src/core/schemas/access-schema.js';
import type { Host } from '../../src/core/schemas/host-schema.js';
import type { Migration } from '../../src/core/schemas/migration-schema.js';
import type { Snapshot } from '../../src/core/schemas/snapshot-schema.js';
import type { Volume } from '../../src/core/schemas/volume-schema.js';
import { startLab, type Lab, type LabHost } from '../lab/lab.js';
import { pollUntil } from '../helpers/server.js';
import { CliSession, type CliResult } from './cli-harness.js';

interface AgentAnswer { hostState: string; desired: { volumeId: string; instance: string }[] }
type VolumeShow = Volume & { grants: Grant[]; attachments: Attachment[] };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Writes `text` at offset 0 of a volume file. */
function writeAt0(path: string, text: string): void {
  const fd = openSync(path, 'r+');
  try { writeSync(fd, text, 0); } finally { closeSync(fd); }
}

/** Reads `length` bytes at offset 0 of a volume file. */
function readAt0(path: string, length: number): string {
  const buf = Buffer.alloc(length);
  const fd = openSync(path, 'r');
  try { readSync(fd, buf, 0, length, 0); } finally { closeSync(fd); }
  return buf.toString('utf8');
}

/** The example command line starting with `startsWith` in the human output of `volume grant`, split into argv. */
function exampleLine(stdout: string, startsWith: string): string[] {
  const line = stdout.split('\n').map((l) => l.trim()).find((l) => l.startsWith(startsWith));
  if (!line) throw new Error(`no line starting with "${startsWith}" in:\n${stdout}`);
  // The CLI quotes only words that need it; these tests use paths and names without spaces.
  return line.split(' ');
}

/** Returns a run that exited 0, else fails with its output. */
function ok(r: CliResult, what: string): CliResult {
  if (r.code !== 0) throw new Error(`${what} exited ${String(r.code)}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

describe('stowage host, grant, snapshot, clone, attach, fence and migration commands (dir backend, faked agents)', () => {
  let s: CliSession;
  /** Hosts whose fake agent is reporting. */
  const live = new Map<string, string>();
  const connected = new Map<string, { volumeId: string; instance: string; deviceId: string }[]>();
  let stopped = false;
  let loop: Promise<void> = Promise.resolve();

  async function report(host: string, address: string): Promise<AgentAnswer> {
    const res = await fetch(`${s.server.url}/v1/agents/${host}/report`, {
      method: 'POST', headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ addresses: [address], connectors: ['file'], instances: ['vm1', 'vm2'], connected: connected.get(host) ?? [] }),
    });
    if (res.status !== 200) throw new Error(`report of ${host}: ${String(res.status)} ${await res.text()}`);
    return (await res.json()) as AgentAnswer;
  }

  /** One pass of a fake agent that connects exactly what it is told to, as the real one converges. */
  async function converge(host: string, address: string): Promise<void> {
    const answer = await report(host, address);
    connected.set(host, answer.desired.map((d) => ({ volumeId: d.volumeId, instance: d.instance, deviceId: `stw-dev-${d.volumeId}` })));
    await report(host, address);
  }

  const run = (args: readonly string[]): Promise<CliResult> => s.run(args);
  /** The file path of a volume, from a read-only grant to the agentless host `reader` (revoked again). */
  async function pathOf(volume: string): Promise<string> {
    const c = await s.json<ConnectionInfoModel>(['volume', 'grant', volume, '--host', 'reader', '--mode', 'ro']);
    ok(await run(['volume', 'revoke', volume, '--host', 'reader']), `revoke ${volume}`);
    return c.path ?? '';
  }
  /** Registers a host whose fake agent reports from now on, and waits until the server has it up. */
  async function liveHost(host: string, address: string): Promise<void> {
    ok(await run(['host', 'create', host, '--address', address]), `host create ${host}`);
    live.set(host, address);
    await pollUntil(`${host} up`, async () => ((await s.json<Host>(['host', 'show', host])).state === 'up' ? true : undefined));
  }

  beforeAll(async () => {
    // Down after 1.5 s, short connect/disconnect waits and a 20 ms poll so the CLI's down/timeout paths show in seconds; host down on the shipped timings: test/defaults/host-down.ts.
    s = await CliSession.start({ hostDownAfterMs: 1500, disconnectTimeoutMs: 3000, connectTimeoutMs: 20_000, operationPollMs: 20 });
    live.set('hv-a', '10.99.201.2');
    live.set('hv-b', '10.99.201.3');
    // Agents report only for registered hosts.
    for (const [h, addr] of live) ok(await run(['host', 'create', h, '--address', addr]), 'host create');
    for (const [h, addr] of live) await converge(h, addr);
    // A host with no agent, only to be granted volumes whose file path a test needs.
    ok(await run(['host', 'create', 'reader', '--address', '10.99.201.20']), 'host create reader');
    loop = (async () => {
      while (!stopped) {
        for (const [h, addr] of [...live]) await converge(h, addr).catch(() => undefined);
        await sleep(100);
      }
    })();
  });
  afterAll(async () => {
    stopped = true;
    await loop;
    await s.stop();
  });

  it('creates, lists, shows, updates and deletes hosts', async () => {
    const created = ok(await run(['host', 'create', 'hx', '--initiator-name', 'iqn.2024-01.test.cli:hx', '--address', '10.99.201.5', '--zone', 'z1']), 'host create');
    expect(created.stdout).toMatch(/Name:\s+hx/);
    expect(created.stdout).toMatch(/Initiator:\s+iqn\.2024-01\.test\.cli:hx/);
    expect(created.stdout).toMatch(/Heartbeat:\s+never/);

    const table = ok(await run(['host', 'list']), 'host list');
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+STATE\s+ADDRESSES\s+INITIATOR\s+ZONE\s+HEARTBEAT\s+INSTANCES$/);
    expect(table.stdout).toMatch(/^hx\s+unknown\s+10\.99\.201\.5\s+iqn\.2024-01\.test\.cli:hx\s+z1\s+never\s+-$/m);
    expect(table.stdout).toMatch(/^hv-a\s+up\s+10\.99\.201\.2\s+-\s+-\s+\d+s ago\s+vm1,vm2$/m);

    const shown = await s.json<Host>(['host', 'show', 'hx']);
    expect(shown).toMatchObject({ name: 'hx', initiatorName: 'iqn.2024-01.test.cli:hx', addresses: ['10.99.201.5'], zone: 'z1' });
    const updated = await s.json<Host>(['host', 'update', 'hx', '--zone', '', '--address', '10.99.201.6', '--clear-initiator-name']);
    expect(updated).toMatchObject({ zone: '', addresses: ['10.99.201.6'], initiatorName: null });
    const nothing = await run(['host', 'update', 'hx']);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toMatch(/^VALIDATION_FAILED: nothing to change/);

    expect(ok(await run(['host', 'delete', 'hx']), 'host delete').stdout).toBe('host hx deleted\n');
    const gone = await run(['host', 'show', 'hx']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^HOST_NOT_FOUND: /);
  });

  it('grants a file volume: prints the path and a qemu-img line that works; ro to two hosts, rw conflicts; revokes', async () => {
    ok(await run(['volume', 'create', 'g1', '--size', '8M']), 'volume create');
    for (const [h, a] of [['r1', '10.99.201.9'], ['r2', '10.99.201.10'], ['w1', '10.99.201.11']] as const) {
      ok(await run(['host', 'create', h, '--address', a]), `host create ${h}`);
    }
    const g = ok(await run(['volume', 'grant', 'g1', '--host', 'r1', '--mode', 'ro']), 'grant r1');
    expect(g.stdout).toMatch(/^read-only access of host r1 to volume g1/);
    expect(g.stdout).toMatch(/Protocol:\s+file/);
    const path = /Path:\s+(\S+)/.exec(g.stdout)?.[1] ?? '';
    expect(path.startsWith(s.dir)).toBe(true);
    expect(existsSync(path)).toBe(true);
    expect(g.stderr).toMatch(/grant g1 to r1 succeeded/);
    // The printed example is a real command line: run it.
    const argv = exampleLine(g.stdout, 'qemu-img info');
    expect(argv).toEqual(['qemu-img', 'info', '-f', 'raw', '-U', path]);
    const info = spawnSync(argv[0] ?? '', argv.slice(1), { encoding: 'utf8' });
    expect(info.status).toBe(0);
    expect(info.stdout).toMatch(/virtual size: 8 MiB/);

    const c2 = await s.json<ConnectionInfoModel>(['volume', 'grant', 'g1', '--host', 'r2', '--mode', 'ro']);
    expect(c2).toEqual({ protocol: 'file', path, mode: 'ro' });
    // Granting again what is granted prints the same access again.
    expect(await s.json<ConnectionInfoModel>(['volume', 'grant', 'g1', '--host', 'r1', '--mode', 'ro'])).toEqual({ protocol: 'file', path, mode: 'ro' });
    const rw = await run(['volume', 'grant', 'g1', '--host', 'w1']);
    expect(rw.code).toBe(1);
    expect(rw.stderr).toMatch(/^VOLUME_IN_USE: volume g1 is granted ro to host r\d/);

    const shown = ok(await run(['volume', 'show', 'g1']), 'volume show');
    expect(shown.stdout).toMatch(/Grants:\nHOST\s+MODE\s+STATE\s+SINCE\n/);
    expect(shown.stdout).toMatch(/^r1\s+ro\s+active\s/m);
    expect(shown.stdout).toMatch(/^r2\s+ro\s+active\s/m);
    expect(shown.stdout).toMatch(/Attachments: none/);
    const shownJson = await s.json<VolumeShow>(['volume', 'show', 'g1']);
    expect(shownJson.name).toBe('g1');
    expect(shownJson.grants.map((x) => `${x.hostName}:${x.mode}:${x.state}`).sort()).toEqual(['r1:ro:active', 'r2:ro:active']);

    const revoked = ok(await run(['volume', 'revoke', 'g1', '--host', 'r1']), 'revoke r1');
    expect(revoked.stdout).toBe('access of host r1 to volume g1 revoked\n');
    const rj = await s.json<{ grant: Grant }>(['volume', 'revoke', 'g1', '--host', 'r2']);
    expect(rj.grant).toMatchObject({ hostName: 'r2', state: 'revoked' });
    expect((await s.json<VolumeShow>(['volume', 'show', 'g1'])).grants).toEqual([]);
    const again = await run(['volume', 'revoke', 'g1', '--host', 'r1']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^NOT_FOUND: /);
  });

  it('snapshots, lists, shows and reverts (data back as it was), refusing without --yes', async () => {
    ok(await run(['volume', 'create', 'sn1', '--size', '8M']), 'volume create');
    const snPath = await pathOf('sn1');
    writeAt0(snPath, 'before-snapshot');
    const snap = ok(await run(['snapshot', 'create', 'sn1', '--name', 's1']), 'snapshot create');
    expect(snap.stdout).toMatch(/Name:\s+s1/);
    expect(snap.stdout).toMatch(/State:\s+available/);
    expect(snap.stdout).toMatch(/Method:\s+(reflink|copy|qcow2-backing)/);
    writeAt0(snPath, 'after--snapshot');

    const table = ok(await run(['snapshot', 'list']), 'snapshot list');
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+ID\s+VOLUME\s+STATE\s+SIZE\s+METHOD\s+CREATED$/);
    expect(table.stdout).toMatch(/^s1\s+snap-\S+\s+sn1\s+available\s+8 MiB\s/m);
    expect((await s.json<Snapshot[]>(['snapshot', 'list', '--volume', 'sn1'])).map((x) => x.name)).toEqual(['s1']);
    expect((await s.json<Snapshot>(['snapshot', 'show', 's1'])).volumeName).toBe('sn1');

    const refused = await run(['volume', 'revert', 'sn1', '--to', 's1']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^VALIDATION_FAILED: not reverting volume sn1 without confirmation/);
    const reverted = ok(await run(['volume', 'revert', 'sn1', '--to', 's1', '--yes']), 'revert');
    expect(reverted.stdout).toMatch(/State:\s+available/);
    expect(reverted.stdout).toContain('volume sn1 reverted to snapshot s1');
    expect(readAt0(snPath, 15)).toBe('before-snapshot');
  });

  it('clones from a volume and from a snapshot, printing the path each took; --no-offload forces a host copy', async () => {
    // Whether `local` offloads depends on the filesystem of the temp dir (reflink or not): the path printed must say which.
    const local = await s.json<Backend>(['backend', 'show', 'local']);
    // Its own source, holding data, and a snapshot of it.
    ok(await run(['volume', 'create', 'csrc', '--size', '8M']), 'volume create');
    writeAt0(await pathOf('csrc'), 'before-snapshot');
    ok(await run(['snapshot', 'create', 'csrc', '--name', 'cs1']), 'snapshot create');
    const fromVol = ok(await run(['volume', 'create', 'c1', '--from-volume', 'csrc']), 'clone from volume');
    expect(fromVol.stdout).toMatch(/Size:\s+8 MiB/);
    expect(fromVol.stdout).toMatch(local.capabilities.includes('clone.offload')
      ? /^Clone path: offloaded clone of volume csrc on local/m
      : /^Clone path: host copy \(qemu-img convert\) of volume csrc from local to local$/m);
    const fromSnap = ok(await run(['volume', 'create', 'c2', '--from-snapshot', 'cs1', '--size', '16M']), 'clone from snapshot');
    expect(fromSnap.stdout).toMatch(/Size:\s+16 MiB/);
    expect(fromSnap.stdout).toMatch(/^Clone path: (offloaded clone|copied by the backend) of snapshot cs1 on local/m);
    const copied = ok(await run(['volume', 'create', 'c3', '--from-volume', 'csrc', '--no-offload']), 'host copy');
    expect(copied.stdout).toMatch(/^Clone path: host copy \(qemu-img convert\) of volume csrc from local to local$/m);

    // The clones hold the source's data: read it through the path a grant hands out.
    for (const c of ['c1', 'c2', 'c3']) {
      const conn = await s.json<ConnectionInfoModel>(['volume', 'grant', c, '--host', 'reader', '--mode', 'ro']);
      expect(readAt0(conn.path ?? '', 15)).toBe('before-snapshot');
      ok(await run(['volume', 'revoke', c, '--host', 'reader']), `revoke ${c}`);
    }

    const noSize = await run(['volume', 'create', 'x1']);
    expect(noSize.code).toBe(2);
    expect(noSize.stderr).toMatch(/^VALIDATION_FAILED: --size is required \(unless the volume is a clone/);
    const both = await run(['volume', 'create', 'x1', '--from-volume', 'csrc', '--from-snapshot', 'cs1']);
    expect(both.code).toBe(2);
    const missing = await run(['volume', 'create', 'x1', '--from-snapshot', 'nope']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^SNAPSHOT_NOT_FOUND: /);

    for (const c of ['c1', 'c2', 'c3']) ok(await run(['volume', 'delete', c, '--yes']), `delete ${c}`);
    const del = ok(await run(['snapshot', 'delete', 'cs1', '--yes']), 'snapshot delete');
    expect(del.stdout).toBe('snapshot cs1 deleted\n');
    expect(await s.json<Snapshot[]>(['snapshot', 'list', '--volume', 'csrc'])).toEqual([]);
  });

  it('attaches through the agent and prints the device id; lists and shows attachments; rw on a second host conflicts', async () => {
    ok(await run(['volume', 'create', 'd1', '--size', '8M']), 'create d1');
    const a = ok(await run(['volume', 'attach', 'd1', '--host', 'hv-a', '--instance', 'vm1']), 'attach');
    expect(a.stdout).toMatch(/State:\s+attached/);
    expect(a.stdout).toMatch(/Device:\s+stw-dev-vol-\S+/);
    expect(a.stdout).toMatch(/^attached to vm1 on hv-a as device stw-dev-vol-\S+$/m);
    expect(a.stderr).toMatch(/attach d1 to hv-a\/vm1 succeeded.*\(steps: grant, connect, activate\)/);
    const attachmentId = /ID:\s+(att-\S+)/.exec(a.stdout)?.[1] ?? '';
    expect(attachmentId).not.toBe('');

    const table = ok(await run(['attachment', 'list']), 'attachment list');
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+VOLUME\s+HOST\s+INSTANCE\s+MODE\s+STATE\s+DEVICE\s+UPDATED$/);
    expect(table.stdout).toMatch(new RegExp(`^${attachmentId}\\s+d1\\s+hv-a\\s+vm1\\s+rw\\s+attached\\s+stw-dev-vol-`, 'm'));
    const listed = await s.json<Attachment[]>(['attachment', 'list', '--volume', 'd1']);
    expect(listed.map((x) => [x.hostName, x.instance, x.state])).toEqual([['hv-a', 'vm1', 'attached']]);
    expect(await s.json<Attachment[]>(['attachment', 'list', '--host', 'hv-b'])).toEqual([]);
    const one = await s.json<Attachment>(['attachment', 'show', attachmentId]);
    expect(one.deviceId).toMatch(/^stw-dev-vol-/);
    const shown = ok(await run(['volume', 'show', 'd1']), 'volume show d1');
    expect(shown.stdout).toMatch(/^hv-a\s+rw\s+active/m);
    expect(shown.stdout).toMatch(/Attachments:\nHOST\s+INSTANCE\s+MODE\s+STATE\s+DEVICE\nhv-a\s+vm1\s+rw\s+attached\s+stw-dev-vol-/);

    const conflict = await run(['volume', 'attach', 'd1', '--host', 'hv-b', '--instance', 'vm1']);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(/^VOLUME_IN_USE: .*hv-a/);
    const usage = await run(['volume', 'attach', 'd1', '--host', 'hv-b']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--instance');
  });

  it('fences a silent host (printing what was revoked), evacuates to another, unfences', async () => {
    // Its own host with a reporting agent and a disk attached there, so hv-a stays up for the rest.
    await liveHost('hv-f', '10.99.201.4');
    ok(await run(['volume', 'create', 'f1', '--size', '8M']), 'create f1');
    const a = ok(await run(['volume', 'attach', 'f1', '--host', 'hv-f', '--instance', 'vm1']), 'attach f1');
    const attachmentId = /ID:\s+(att-\S+)/.exec(a.stdout)?.[1] ?? '';
    expect(attachmentId).not.toBe('');
    live.delete('hv-f');
    // hv-f's agent is silent: wait until the server has marked it down.
    await pollUntil('hv-f marked down', async () => ((await s.json<Host[]>(['host', 'list'])).find((h) => h.name === 'hv-f')?.state === 'down' ? true : undefined));
    const refused = await run(['volume', 'attach', 'f1', '--host', 'hv-b', '--instance', 'vm1']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^HOST_NOT_FENCED: .*stowage host fence hv-f/);
    const early = await run(['host', 'evacuate', 'hv-f', '--to', 'hv-b']);
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(/^HOST_NOT_FENCED: /);

    const unconfirmed = await run(['host', 'fence', 'hv-f']);
    expect(unconfirmed.code).toBe(2);
    const fenced = ok(await run(['host', 'fence', 'hv-f', '--yes']), 'fence');
    expect(fenced.stdout).toMatch(/^host hv-f is fenced: revoked 1 grant\(s\)$/m);
    expect(fenced.stdout).toMatch(/Access revoked:\nVOLUME\s+MODE\nf1\s+rw\n/);
    expect(fenced.stdout).toMatch(new RegExp(`Attachments cut:\\n.*\\n${attachmentId}\\s+f1\\s+hv-f\\s+vm1\\s+rw\\s+gone`));
    const again = await s.json<{ host: Host; revokedGrants: Grant[]; cutAttachments: Attachment[] }>(['host', 'fence', 'hv-f', '--yes']);
    expect(again.host.state).toBe('fenced');
    expect(again.revokedGrants).toEqual([]);

    const ev = ok(await run(['host', 'evacuate', 'hv-f', '--to', 'hv-b']), 'evacuate');
    expect(ev.stdout).toMatch(/^att-\S+\s+f1\s+hv-b\s+vm1\s+rw\s+attached\s+stw-dev-vol-/m);
    expect(ev.stderr).toMatch(/attach f1 to hv-b\/vm1 succeeded/);

    const unfenced = ok(await run(['host', 'unfence', 'hv-f']), 'unfence');
    expect(unfenced.stdout).toMatch(/State:\s+unknown/);
    const notFenced = await run(['host', 'unfence', 'hv-f']);
    expect(notFenced.code).toBe(1);
    expect(notFenced.stderr).toMatch(/^INVALID_STATE: /);
  });

  it('detaches (the agent disconnects, access is revoked) and keeps gone attachments for --all', async () => {
    // Its own volume, attached on hv-a, detached, then attached on hv-b and detached again.
    ok(await run(['volume', 'create', 'dt1', '--size', '8M']), 'create dt1');
    ok(await run(['volume', 'attach', 'dt1', '--host', 'hv-a', '--instance', 'vm2']), 'attach dt1 to hv-a');
    ok(await run(['volume', 'detach', 'dt1']), 'detach from hv-a');
    ok(await run(['volume', 'attach', 'dt1', '--host', 'hv-b', '--instance', 'vm2']), 'attach dt1 to hv-b');
    const d = ok(await run(['volume', 'detach', 'dt1']), 'detach');
    expect(d.stdout).toMatch(/^att-\S+\s+dt1\s+hv-b\s+vm2\s+rw\s+gone\s+-/m);
    expect(d.stderr).toMatch(/detach dt1 from hv-b\/vm2 succeeded/);
    expect(ok(await run(['attachment', 'list', '--volume', 'dt1']), 'list').stdout).toBe('no attachments\n');
    const all = await s.json<Attachment[]>(['attachment', 'list', '--volume', 'dt1', '--all']);
    expect(all.map((a) => `${a.hostName}:${a.state}`).sort()).toEqual(['hv-a:gone', 'hv-b:gone']);
    expect((await s.json<VolumeShow>(['volume', 'show', 'dt1'])).grants).toEqual([]);
  });

  it('migrates an instance\'s storage: start → complete by --instance/--from/--to, and abort by --id', async () => {
    // hv-a is reporting again: wait until the server has seen it.
    await pollUntil('hv-a up again', async () => ((await s.json<Host>(['host', 'show', 'hv-a'])).state === 'up' ? true : undefined));
    ok(await run(['volume', 'create', 'm1', '--size', '8M']), 'create m1');
    ok(await run(['volume', 'attach', 'm1', '--host', 'hv-a', '--instance', 'vm2']), 'attach m1');

    const started = ok(await run(['migration', 'start', '--instance', 'vm2', '--from', 'hv-a', '--to', 'hv-b']), 'migration start');
    expect(started.stdout).toMatch(/State:\s+ready/);
    expect(started.stdout).toMatch(/^hv-a\s+vm2\s+rw\s+attached\s+stw-dev-vol-/m);
    expect(started.stdout).toMatch(/^hv-b\s+vm2\s+rw\s+attached\s+stw-dev-vol-/m);
    const table = ok(await run(['migration', 'list']), 'migration list');
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+INSTANCE\s+FROM\s+TO\s+STATE\s+CREATED\s+UPDATED$/);
    expect(table.stdout).toMatch(/^mig-\S+\s+vm2\s+hv-a\s+hv-b\s+ready\s/m);

    const usage = await run(['migration', 'complete', '--instance', 'vm2']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/missing --from, --to/);
    const done = await s.json<Migration>(['migration', 'complete', '--instance', 'vm2', '--from', 'hv-a', '--to', 'hv-b']);
    expect(done.state).toBe('completed');
    const after = await s.json<Attachment[]>(['attachment', 'list', '--volume', 'm1']);
    expect(after.map((a) => `${a.hostName}:${a.state}`)).toEqual(['hv-b:attached']);
    const none = await run(['migration', 'abort', '--instance', 'vm2', '--from', 'hv-a', '--to', 'hv-b']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^NOT_FOUND: no open migration of vm2 from hv-a to hv-b/);

    const back = await s.json<Migration>(['migration', 'start', '--instance', 'vm2', '--from', 'hv-b', '--to', 'hv-a']);
    expect(back.state).toBe('ready');
    const aborted = ok(await run(['migration', 'abort', '--id', back.id]), 'abort');
    expect(aborted.stdout).toMatch(/State:\s+aborted/);
    expect(aborted.stdout).toMatch(/^hv-b\s+vm2\s+rw\s+attached/m);
    expect(aborted.stdout).not.toMatch(/^hv-a\s+vm2/m);
    expect((await s.json<Migration[]>(['migration', 'list'])).map((m) => m.state).sort()).toEqual(['aborted', 'completed']);
  });

  it('shows no secret in volume show, attachment list or host list, as tables or JSON', async () => {
    // Its own volumes: one granted, one attached.
    ok(await run(['volume', 'create', 'sec1', '--size', '8M']), 'create sec1');
    ok(await run(['volume', 'grant', 'sec1', '--host', 'reader', '--mode', 'ro']), 'grant sec1');
    ok(await run(['volume', 'create', 'sec2', '--size', '8M']), 'create sec2');
    ok(await run(['volume', 'attach', 'sec2', '--host', 'hv-a', '--instance', 'vm2']), 'attach sec2');
    for (const args of [['volume', 'show', 'sec1'], ['volume', 'show', 'sec2'], ['attachment', 'list', '--all'], ['host', 'list']]) {
      for (const out of [[], ['-o', 'json']]) {
        const r = ok(await run([...args, ...out]), args.join(' '));
        expect(r.stdout).not.toMatch(/secret/i);
        expect(r.stdout).not.toMatch(/password/i);
      }
    }
  });
});

/**
 * The grant output against a real tgt SAN in the lab: the printed iscsi-ls and qemu-img lines log
 * in from the granted namespace host as they are, and the CHAP secret they carry appears nowhere else.
 */
describe('stowage volume grant on a tgt (iSCSI) backend: what it prints is enough to log in', () => {
  let lab: Lab;
  let s: CliSession;
  let h1: LabHost;
  let h2: LabHost;
  /** Every CHAP secret the CLI printed in this describe. */
  const secrets = new Set<string>();
  /** Creates a volume on the SAN and grants it read-write to h1 through the CLI, noting the secret. */
  const grantedLun = async (volume: string): Promise<ConnectionInfoModel> => {
    ok(await s.run(['volume', 'create', volume, '--size', '16M', '--backend', 'san']), `create ${volume}`);
    const c = await s.json<ConnectionInfoModel>(['volume', 'grant', volume, '--host', h1.name]);
    if (c.chapSecret) secrets.add(c.chapSecret);
    return c;
  };

  beforeAll(async () => {
    lab = await startLab({ hosts: 2, tgtd: true, btrfs: false, xfs: true });
    [h1, h2] = [lab.host('h1'), lab.host('h2')];
    // Poll 20 ms and reconcile 1 s so CLI grants settle quickly; the reconciler on its shipped interval: test/defaults/tgtd-restart.ts.
    s = await CliSession.start({ operationPollMs: 20, reconcileIntervalMs: 1000 });
    const luns = join(lab.runDir, 'cli-luns');
    mkdirSync(luns, { recursive: true });
    const driver = `tgt://${lab.portal}?backing=${encodeURIComponent(`dir://${luns}`)}&control=${String(lab.tgtdControlPort)}`;
    const b = await s.run(['backend', 'create', 'san', '--driver', driver]);
    if (b.code !== 0) throw new Error(`backend create: ${b.stderr}`);
    for (const h of [h1, h2]) {
      const r = await s.run(['host', 'create', h.name, '--initiator-name', h.initiatorName, '--address', h.address]);
      if (r.code !== 0) throw new Error(`host create: ${r.stderr}`);
    }
  });
  afterAll(async () => {
    try {
      await s?.stop();
    } finally {
      await lab?.stop();
    }
  });

  it('prints portal, IQN, LUN, CHAP user and secret, and command lines that log in from the host', async () => {
    ok(await s.run(['volume', 'create', 'lun1', '--size', '16M', '--backend', 'san']), 'create lun1');
    const g = ok(await s.run(['volume', 'grant', 'lun1', '--host', h1.name]), 'grant');
    expect(g.stdout).toMatch(/^read-write access of host h1 to volume lun1 \(this output holds the CHAP secret: keep it private\)/);
    expect(g.stdout).toMatch(new RegExp(`Portal:\\s+${lab.portal.replace(/\./g, '\\.')}`));
    const iqn = /^IQN:\s+(\S+)$/m.exec(g.stdout)?.[1] ?? '';
    const lun = /^LUN:\s+(\d+)$/m.exec(g.stdout)?.[1] ?? '';
    const user = /^CHAP user:\s+(\S+)$/m.exec(g.stdout)?.[1] ?? '';
    const secret = /^CHAP secret:\s+(\S+)$/m.exec(g.stdout)?.[1] ?? '';
    expect(iqn).toMatch(/^iqn\./);
    expect(user).not.toBe('');
    expect(secret.length).toBeGreaterThanOrEqual(12);
    secrets.add(secret);
    expect(g.stdout).toMatch(new RegExp(`Initiator:\\s+${h1.initiatorName.replace(/\./g, '\\.')}`));

    const ls = exampleLine(g.stdout, 'iscsi-ls');
    expect(ls).toEqual(['iscsi-ls', '-s', '-i', h1.initiatorName, `iscsi://${user}%${secret}@${lab.portal}`]);
    const listed = await lab.hostExec(h1, ls[0] ?? '', ls.slice(1), { timeoutMs: 30_000 });
    expect(listed.stdout).toContain(iqn);
    expect(listed.stdout).toMatch(new RegExp(`^Lun:${lun}\\s+Type:DIRECT_ACCESS`, 'm'));

    const qi = exampleLine(g.stdout, 'qemu-img info');
    expect(qi.join(' ')).toBe(`qemu-img info --object secret,id=sec0,data=${secret} --image-opts driver=iscsi,transport=tcp,portal=${lab.portal},target=${iqn},lun=${lun},user=${user},password-secret=sec0,initiator-name=${h1.initiatorName}`);
    const info = await lab.hostExec(h1, qi[0] ?? '', qi.slice(1), { timeoutMs: 30_000 });
    expect(info.stdout).toMatch(/virtual size: 16 MiB/);

    // Another host is refused with the same credentials: access is bound to h1.
    const other = await lab.hostExec(h2, 'iscsi-ls', ['-s', '-i', h2.initiatorName, `iscsi://${user}%${secret}@${lab.portal}`], { timeoutMs: 30_000 });
    expect(other.stdout).not.toContain(iqn);

    const json = await s.json<ConnectionInfoModel>(['volume', 'grant', 'lun1', '--host', h1.name]);
    expect(json).toMatchObject({ protocol: 'iscsi', iqn, lun: Number(lun), chapUser: user, chapSecret: secret, mode: 'rw' });
    const conflict = await s.run(['volume', 'grant', 'lun1', '--host', h2.name, '--mode', 'ro']);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(/^VOLUME_IN_USE: volume lun1 is granted rw to host h1/);
    // h1 is left with no target but the ones later tests grant it: iscsi-ls logs in to every target
    // it discovers with the one account it is given, and fails on the others.
    ok(await s.run(['volume', 'revoke', 'lun1', '--host', h1.name]), 'revoke lun1');
  });

  it('never shows the secret in volume show, host list or attachment list, tables or JSON', async () => {
    // Its own granted volume: the secret it was handed must appear nowhere after.
    const mine = await grantedLun('lun2');
    expect(mine.chapSecret?.length).toBeGreaterThanOrEqual(12);
    expect(secrets.has(mine.chapSecret ?? '')).toBe(true);
    const shown = ok(await s.run(['volume', 'show', 'lun2']), 'volume show');
    expect(shown.stdout).toMatch(/^h1\s+rw\s+active/m);
    const shownJson = await s.json<VolumeShow>(['volume', 'show', 'lun2']);
    expect(shownJson.grants[0]?.connection?.chapUser).toBeTruthy();
    expect(shownJson.grants[0]?.connection && 'chapSecret' in shownJson.grants[0].connection).toBe(false);
    for (const args of [['volume', 'show', 'lun2'], ['host', 'list'], ['host', 'show', h1.name], ['attachment', 'list', '--all'], ['volume', 'list']]) {
      for (const out of [[], ['-o', 'json']]) {
        const r = ok(await s.run([...args, ...out]), args.join(' '));
        for (const secret of secrets) {
          expect(r.stdout).not.toContain(secret);
          expect(r.stderr).not.toContain(secret);
        }
      }
    }
    ok(await s.run(['volume', 'revoke', 'lun2', '--host', h1.name]), 'revoke lun2');
  });

  it('clones on a reflink (XFS) dir backend offloaded, and with --no-offload as a host copy, printing the path', async () => {
    const vols = join(lab.xfsDir, 'cli-vols');
    mkdirSync(vols, { recursive: true });
    ok(await s.run(['backend', 'create', 'xfs', '--driver', `dir://${vols}`]), 'backend create xfs');
    expect((await s.json<Backend>(['backend', 'show', 'xfs'])).capabilities).toContain('clone.offload');
    ok(await s.run(['volume', 'create', 'src', '--size', '16M', '--backend', 'xfs']), 'create src');
    ok(await s.run(['host', 'create', 'reader', '--address', '10.99.201.40']), 'host create reader');
    const pathOf = async (vol: string): Promise<string> => {
      const c = await s.json<ConnectionInfoModel>(['volume', 'grant', vol, '--host', 'reader', '--mode', 'ro']);
      ok(await s.run(['volume', 'revoke', vol, '--host', 'reader']), `revoke ${vol}`);
      return c.path ?? '';
    };
    writeAt0(await pathOf('src'), 'xfs-source-data');
    const off = ok(await s.run(['volume', 'create', 'fast1', '--from-volume', 'src']), 'offloaded clone');
    expect(off.stdout).toMatch(/^Clone path: offloaded clone of volume src on xfs \(reflink\)$/m);
    const copy = ok(await s.run(['volume', 'create', 'slow1', '--from-volume', 'src', '--no-offload']), 'host copy');
    expect(copy.stdout).toMatch(/^Clone path: host copy \(qemu-img convert\) of volume src from xfs to /m);
    for (const v of ['fast1', 'slow1']) expect(readAt0(await pathOf(v), 15)).toBe('xfs-source-data');
  });

  it('after revoke the host cannot log in any more', async () => {
    // Its own granted volume, which h1 can log in to until the revoke.
    const c = await grantedLun('lun3');
    const secret = c.chapSecret ?? '';
    const user = (await s.json<VolumeShow>(['volume', 'show', 'lun3'])).grants[0]?.connection?.chapUser ?? '';
    expect(user).toBe(c.chapUser);
    const before = await lab.hostExec(h1, 'iscsi-ls', ['-s', '-i', h1.initiatorName, `iscsi://${user}%${secret}@${lab.portal}`], { timeoutMs: 30_000 });
    expect(before.stdout).toMatch(/Lun:\d+/);
    ok(await s.run(['volume', 'revoke', 'lun3', '--host', h1.name]), 'revoke');
    const after = await lab.hostExec(h1, 'iscsi-ls', ['-s', '-i', h1.initiatorName, `iscsi://${user}%${secret}@${lab.portal}`], { timeoutMs: 30_000 });
    expect(after.stdout).not.toMatch(/Lun:\d+/);
    expect((await s.json<VolumeShow>(['volume', 'show', 'lun3'])).grants).toEqual([]);
  });
});
