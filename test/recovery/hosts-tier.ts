import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { expect } from 'vitest';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import type { Database } from '../../src/store/schema.js';
import {
  allAttachments, blockDevices, createVolume, liveGrants, registerTgtBackend, sessionAddresses, startAgent, startHostVm, stwNodes, waitHostsUp,
  HOST_TEST_ENV, MiB, type AgentProcess, type AttachmentView, type HostVm, type MigrationView,
} from '../e2e-hosts/hosts-kit.js';
import { cliConfigPathOf, pollUntil, readToken, type ApiClient, type ApiResponse } from '../helpers/server.js';
import { startLab, type Lab } from '../lab/lab.js';
import { freeTcpPort } from '../lab/ports.js';
import type { Prepared, Scenario, Tier } from './matrix-kit.js';
import { checkTgtd } from './tgt-tier.js';

const SIZE = 8 * MiB;

/**
 * The hosts tier's world: a lab with tgtd and three namespace hosts, a real `stowage agent` in each,
 * and QEMU VMs the agents plug disks into. h1/`a` takes attaches and detaches; `ms`, `mc`, `ma` on
 * h1 and h2 are one instance per migration kind (a migration moves every disk of its instance, so
 * the kinds of one round must not share one); h3/`f` is the host that is fenced (and unfenced) each round.
 */
export interface HostsWorld {
  readonly lab: Lab;
  /** The control plane at its fixed lab-bridge address: valid across every restart of the run. */
  readonly api: ApiClient;
  readonly vms: readonly { readonly host: string; readonly instance: string; readonly vm: HostVm }[];
  readonly agents: readonly AgentProcess[];
}

/** The instances (VM names) each lab host runs. */
const VMS: readonly (readonly [string, string])[] = [
  ['h1', 'a'], ['h1', 'ms'], ['h1', 'mc'], ['h1', 'ma'], ['h2', 'ms'], ['h2', 'mc'], ['h2', 'ma'], ['h3', 'f'],
];

/** An operation's answer rewrapped as `{ operation }`, the shape the matrix reads the id from. */
const asOperation = (r: ApiResponse, pick: (b: unknown) => unknown): ApiResponse => ({ ...r, body: { operation: pick(r.body) } });

function expectSucceeded(op: Operation, steps: readonly string[]): void {
  expect(op.state, JSON.stringify(op.error)).toBe('succeeded');
  expect(op.stepsDone.map((s) => s.name)).toEqual(steps);
}

const liveOf = async (api: ApiClient, volumeId: string): Promise<AttachmentView[]> =>
  (await allAttachments(api)).filter((a) => a.volumeId === volumeId && a.state !== 'gone');

const migrationsOf = async (api: ApiClient, instance: string): Promise<MigrationView[]> =>
  (await api.ok<{ items: MigrationView[] }>('GET', '/v1/migrations?limit=200', 200)).items.filter((m) => m.instance === instance);

/**
 * Brings a migration instance back to one fresh disk on h1: aborts an open migration the last round
 * left ready, detaches every disk it has anywhere, attaches a new volume on h1; with `ready`, also
 * starts the migration to h2 and waits for `ready` (for complete and abort to act on).
 */
async function freshInstance(api: ApiClient, instance: string, name: string, ready: boolean): Promise<Prepared> {
  for (const m of await migrationsOf(api, instance)) if (m.state === 'ready') await api.ok('POST', `/v1/migrations/${m.id}/abort?wait=true`, 200);
  for (const a of await allAttachments(api)) {
    if (a.instance === instance && a.state !== 'gone') await api.ok('POST', `/v1/attachments/${a.id}/detach?wait=true`, 200);
  }
  const vol = await createVolume(api, name, SIZE, 'san');
  await api.ok('POST', `/v1/volumes/${vol}/attachments?wait=true`, 200, { body: { host: 'h1', instance } });
  if (!ready) return { vol };
  const m = await api.ok<{ migration: MigrationView }>('POST', '/v1/migrations?wait=true', 200, { body: { instance, from: 'h1', to: 'h2' } });
  expect(m.migration.state).toBe('ready');
  return { vol, migration: m.migration.id };
}

const migrationState = async (api: ApiClient, id: string): Promise<string | undefined> =>
  (await api.ok<{ items: MigrationView[] }>('GET', '/v1/migrations?limit=200', 200)).items.find((m) => m.id === id)?.state;
const hostsHolding = async (api: ApiClient, vol: string): Promise<string[]> => (await liveOf(api, vol)).map((a) => `${a.hostName}:${a.state}`).sort();

function hostsScenarios(stepsOf: (kind: string) => readonly string[]): Scenario<HostsWorld>[] {
  const migrate = (verb: 'complete' | 'abort') => (api: ApiClient, _w: HostsWorld, p: Prepared): Promise<ApiResponse> =>
    api.request('POST', `/v1/migrations/${p.migration ?? ''}/${verb}?wait=false`);
  return [
    {
      kind: 'attachment.attach', label: 'attach', compensates: false,
      prepare: async (api, _w, name) => ({ vol: await createVolume(api, name, SIZE, 'san') }),
      submit: (api, _w, p) => api.request('POST', `/v1/volumes/${p.vol ?? ''}/attachments?wait=false`, { body: { host: 'h1', instance: 'a' } }),
      verify: async (api, _w, p, op) => {
        expectSucceeded(op, stepsOf(op.kind));
        expect(await hostsHolding(api, p.vol ?? '')).toEqual(['h1:attached']);
      },
    },
    {
      kind: 'attachment.detach', label: 'detach', compensates: false,
      prepare: async (api, _w, name) => {
        const vol = await createVolume(api, name, SIZE, 'san');
        const r = await api.ok<{ attachment: AttachmentView }>('POST', `/v1/volumes/${vol}/attachments?wait=true`, 200, { body: { host: 'h1', instance: 'a' } });
        return { vol, attachment: r.attachment.id };
      },
      submit: (api, _w, p) => api.request('POST', `/v1/attachments/${p.attachment ?? ''}/detach?wait=false`),
      verify: async (api, _w, p, op) => {
        expectSucceeded(op, stepsOf(op.kind));
        expect(await hostsHolding(api, p.vol ?? '')).toEqual([]);
        expect(await liveGrants(api, p.vol ?? ''), 'revoked even though the server died mid-detach').toEqual([]);
      },
    },
    {
      kind: 'host.fence', label: 'fence', compensates: false,
      prepare: async (api, _w, name) => {
        // The last round fenced h3: return it to service, and its agent brings it up again.
        if ((await api.ok<{ state: string }>('GET', '/v1/hosts/h3', 200)).state === 'fenced') await api.ok('POST', '/v1/hosts/h3/unfence', 204);
        await waitHostsUp(api, ['h3']);
        const vol = await createVolume(api, name, SIZE, 'san');
        await api.ok('POST', `/v1/volumes/${vol}/attachments?wait=true`, 200, { body: { host: 'h3', instance: 'f' } });
        return { vol };
      },
      submit: async (api) => asOperation(await api.request('POST', '/v1/hosts/h3/fence?wait=false'), (b) => b),
      verify: async (api, _w, p, op) => {
        expectSucceeded(op, stepsOf(op.kind));
        expect((await api.ok<{ state: string }>('GET', '/v1/hosts/h3', 200)).state).toBe('fenced');
        expect(await hostsHolding(api, p.vol ?? ''), 'the fenced host\'s attachment is cut').toEqual([]);
        expect(await liveGrants(api, p.vol ?? '')).toEqual([]);
      },
    },
    {
      kind: 'migration.start', label: 'migration start', compensates: false,
      prepare: (api, _w, name) => freshInstance(api, 'ms', name, false),
      submit: (api) => api.request('POST', '/v1/migrations?wait=false', { body: { instance: 'ms', from: 'h1', to: 'h2' } }),
      verify: async (api, _w, p, op) => {
        expectSucceeded(op, stepsOf(op.kind));
        expect(await migrationState(api, op.targetId)).toBe('ready');
        expect(await hostsHolding(api, p.vol ?? '')).toEqual(['h1:attached', 'h2:attached']);
      },
    },
    {
      kind: 'migration.complete', label: 'migration complete', compensates: false,
      prepare: (api, _w, name) => freshInstance(api, 'mc', name, true),
      submit: migrate('complete'),
      verify: async (api, _w, p, op) => {
        expectSucceeded(op, stepsOf(op.kind));
        expect(await migrationState(api, p.migration ?? '')).toBe('completed');
        expect(await hostsHolding(api, p.vol ?? '')).toEqual(['h2:attached']);
      },
    },
    {
      kind: 'migration.abort', label: 'migration abort', compensates: false,
      prepare: (api, _w, name) => freshInstance(api, 'ma', name, true),
      submit: migrate('abort'),
      verify: async (api, _w, p, op) => {
        expectSucceeded(op, stepsOf(op.kind));
        expect(await migrationState(api, p.migration ?? '')).toBe('aborted');
        expect(await hostsHolding(api, p.vol ?? '')).toEqual(['h1:attached']);
      },
    },
  ];
}

/** Kinds whose effect lives on hosts: attachments (agent + QEMU), fencing, live-migration handoffs. */
export const HOSTS_KINDS: readonly string[] = ['attachment.attach', 'attachment.detach', 'host.fence', 'migration.start', 'migration.complete', 'migration.abort'];

/**
 * The hosts tier: a lab with tgtd and three hosts, the control plane on the lab bridge at one fixed
 * port (the agents keep its URL across every restart), a real agent and QEMU VMs in each host.
 * A factory, since the lab is started before the first server (it listens on the lab's bridge).
 */
export function hostsTier(): Tier<HostsWorld> {
  let lab: Lab | undefined;
  let world: HostsWorld | undefined;
  const labOf = (): Lab => {
    if (lab === undefined) throw new Error('listen() first');
    return lab;
  };
  return {
    kinds: HOSTS_KINDS,
    // Reconcile every second so a re-export after the restart is seen in seconds; the timings on the shipped defaults: test/defaults/.
    env: { STOWAGE_DEFAULT_BACKEND: 'false', STOWAGE_RECONCILE_INTERVAL_MS: '1000', ...HOST_TEST_ENV },
    scenarios: hostsScenarios,
    listen: async () => {
      lab = await startLab({ hosts: 3, tgtd: true, btrfs: true, xfs: false });
      return { host: lab.bridgeAddress, port: await freeTcpPort(lab.bridgeAddress) };
    },
    setUp: async (api, dataDir) => {
      const l = labOf();
      for (const h of l.hosts) await api.ok('POST', '/v1/hosts', 201, { body: { name: h.name, addresses: [h.address] } });
      await registerTgtBackend(api, l, 'san');
      const vmDir = (h: string): string => join(dataDir, 'vms', h);
      const vms = [];
      for (const [host, instance] of VMS) {
        vms.push({ host, instance, vm: await startHostVm({ lab: l, host: l.host(host), name: instance, vmDir: vmDir(host), testDir: join(dataDir, 'vm-test', host) }) });
      }
      const token = readToken(cliConfigPathOf(dataDir));
      const agents = l.hosts.map((h) => startAgent({ host: h, apiUrl: api.baseUrl, token, vmDir: vmDir(h.name), logDir: join(dataDir, 'agents') }));
      await waitHostsUp(api, l.hosts.map((h) => h.name));
      world = { lab: l, api, vms, agents };
      return world;
    },
    tearDown: async (w) => {
      for (const a of w.agents) await a.kill9();
      for (const v of w.vms) await v.vm.stop();
      await w.lab.stop();
    },
    checkWorld: (db, w) => checkHosts(db, w),
  };
}

/**
 * What must hold once the restarted server and the agents have settled (polled: the agents unplug
 * and the reconciler re-exports after the restart): tgtd's targets, ACLs and CHAP accounts are the
 * store's active grants; no session from a host without a grant; every attachment attached, gone,
 * or error with a reason; every migration final; each VM has exactly the `stw-` nodes and devices
 * of its attached disks.
 */
async function checkHosts(db: Kysely<Database>, w: HostsWorld): Promise<void> {
  await pollUntil('the hosts to settle consistent with the store', async () => {
    await checkTgtd(db, w.lab);
    const problems: string[] = [];
    const atts = await allAttachments(w.api);
    for (const a of atts) {
      if (!['attached', 'gone', 'error'].includes(a.state)) problems.push(`attachment ${a.volumeName}@${a.hostName}/${a.instance} is ${a.state}`);
      if (a.state === 'error' && (a.stateReason ?? '') === '') problems.push(`attachment ${a.volumeName}@${a.hostName} is error without a reason`);
    }
    for (const m of (await w.api.ok<{ items: MigrationView[] }>('GET', '/v1/migrations?limit=200', 200)).items) {
      if (!['ready', 'completed', 'aborted', 'error'].includes(m.state)) problems.push(`migration ${m.id} of ${m.instance} is ${m.state}`);
    }
    const addressOf = new Map(w.lab.hosts.map((h) => [h.name, h.address]));
    for (const volumeId of new Set(atts.map((a) => a.volumeId))) {
      const allowed = (await liveGrants(w.api, volumeId)).map((g) => addressOf.get(g.hostName) ?? g.hostName);
      for (const s of await sessionAddresses(w.lab, volumeId)) if (!allowed.includes(s)) problems.push(`${volumeId}: session from ${s} without a grant`);
    }
    for (const { host, instance, vm } of w.vms) {
      const attached = atts.filter((a) => a.hostName === host && a.instance === instance && a.state === 'attached').map((a) => a.volumeId);
      const wantNodes = attached.flatMap((id) => [`stw-${id}`, `stw-${id}-p`]).sort();
      const nodes = await stwNodes(vm);
      if (JSON.stringify(nodes) !== JSON.stringify(wantNodes)) problems.push(`${host}/${instance}: block nodes ${JSON.stringify(nodes)}, attached ${JSON.stringify(attached)}`);
      const devices = (await blockDevices(vm)).filter((d) => d.startsWith('stw-'));
      const wantDevices = attached.map((id) => `stw-dev-${id}`).sort();
      if (JSON.stringify(devices) !== JSON.stringify(wantDevices)) problems.push(`${host}/${instance}: devices ${JSON.stringify(devices)}, attached ${JSON.stringify(attached)}`);
    }
    if (problems.length > 0) throw new Error(problems.join('; '));
    return true;
  }, 60_000, 250); // well inside the round's test timeout, so a failure names what is wrong rather than timing out
}
