import type { Kysely } from 'kysely';
import { expect } from 'vitest';
import type { Operation } from '../../src/core/schemas/operation-schema.js';
import { readJson } from '../../src/store/json.js';
import { tgtAccountName } from '../../src/drivers/tgt/tgt-access.js';
import type { Database } from '../../src/store/schema.js';
import { createVolume, registerBackend, registerLabHosts, showAccounts, showTargets, tgtUri, type GrantView } from '../e2e-iscsi/e2e-kit.js';
import type { ApiClient } from '../helpers/server.js';
import { startLab, type Lab } from '../lab/lab.js';
import type { Scenario, Tier } from './matrix-kit.js';

const MiB = 1024 ** 2;
const SIZE = 8 * MiB;
/** The tgt driver's IQN prefix: every target on the lab's tgtd is one of ours. */
const IQN = 'iqn.2026-11.io.stowage:';

/** The tgt tier's world: a private tgtd with a btrfs backing store, and two namespace hosts. */
export interface TgtWorld {
  readonly lab: Lab;
}

interface VolumeView { id: string; state: string; stateReason: string | null }

const grantOf = async (api: ApiClient, volume: string, host: string): Promise<GrantView | undefined> =>
  (await api.ok<{ items: GrantView[] }>('GET', `/v1/volumes/${volume}/grants`, 200)).items.find((g) => g.hostName === host);

function expectSucceeded(op: Operation, steps: readonly string[]): void {
  expect(op.state, JSON.stringify(op.error)).toBe('succeeded');
  expect(op.stepsDone.map((s) => s.name)).toEqual(steps);
}

function tgtScenarios(stepsOf: (kind: string) => readonly string[]): Scenario<TgtWorld>[] {
  return [
    {
      kind: 'grant.create', label: 'grant.create', compensates: false,
      prepare: async (api, _w, name) => ({ vol: (await createVolume(api, name, SIZE, 'san')).id }),
      submit: (api, _w, p) => api.request('POST', `/v1/volumes/${p.vol ?? ''}/grants?wait=false`, { body: { host: 'h1', mode: 'rw' } }),
      verify: async (api, _w, p, op) => {
        expectSucceeded(op, stepsOf(op.kind));
        expect((await grantOf(api, p.vol ?? '', 'h1'))?.state).toBe('active');
      },
    },
    {
      kind: 'grant.revoke', label: 'grant.revoke', compensates: false,
      prepare: async (api, _w, name) => {
        const vol = (await createVolume(api, name, SIZE, 'san')).id;
        // Two read-only grants (a read-write one excludes other hosts): revoking h1 must leave h2's alone.
        await api.ok('POST', `/v1/volumes/${vol}/grants?wait=true`, 200, { body: { host: 'h1', mode: 'ro' } });
        await api.ok('POST', `/v1/volumes/${vol}/grants?wait=true`, 200, { body: { host: 'h2', mode: 'ro' } });
        return { vol };
      },
      submit: (api, _w, p) => api.request('DELETE', `/v1/volumes/${p.vol ?? ''}/grants/h1?wait=false`),
      verify: async (api, _w, p, op) => {
        expectSucceeded(op, stepsOf(op.kind));
        expect(await grantOf(api, p.vol ?? '', 'h1')).toBeUndefined();
        expect((await grantOf(api, p.vol ?? '', 'h2'))?.state, 'the other host keeps its grant').toBe('active');
      },
    },
    {
      // On tgt a volume is also a target: create and delete must leave tgtd matching the store.
      kind: 'volume.create', label: 'volume.create on tgt', compensates: false,
      prepare: () => Promise.resolve({}),
      submit: (api, _w, _p, name) => api.request('POST', '/v1/volumes?wait=false', { body: { name, sizeBytes: SIZE, backend: 'san' } }),
      verify: async (api, _w, _p, op) => {
        expectSucceeded(op, stepsOf(op.kind));
        expect((await api.ok<VolumeView>('GET', `/v1/volumes/${op.targetId}`, 200)).state).toBe('available');
      },
    },
    {
      kind: 'volume.delete', label: 'volume.delete on tgt', compensates: false,
      prepare: async (api, _w, name) => ({ vol: (await createVolume(api, name, SIZE, 'san')).id }),
      submit: (api, _w, p) => api.request('DELETE', `/v1/volumes/${p.vol ?? ''}?wait=false`),
      verify: async (api, _w, _p, op) => {
        expectSucceeded(op, stepsOf(op.kind));
        expect((await api.ok<VolumeView>('GET', `/v1/volumes/${op.targetId}`, 200)).state).toBe('deleted');
      },
    },
  ];
}

/** Kinds whose effect lives in tgtd: grants, and volumes on a tgt backend (each one a target). */
export const TGT_KINDS: readonly string[] = ['grant.create', 'grant.revoke', 'volume.create', 'volume.delete'];

/** The tgt tier: a real tgtd in test/lab, a tgt backend over btrfs, two registered hosts (no agents needed). */
export const tgtTier: Tier<TgtWorld> = {
  kinds: TGT_KINDS,
  env: { STOWAGE_DEFAULT_BACKEND: 'false' },
  scenarios: tgtScenarios,
  setUp: async (api) => {
    const lab = await startLab({ hosts: 2, tgtd: true, btrfs: true, xfs: false });
    await registerLabHosts(api, lab);
    await registerBackend(api, 'san', tgtUri(lab, `btrfs://${lab.btrfsDir}/pool`));
    return { lab };
  },
  tearDown: async (w) => { await w.lab.stop(); },
  checkWorld: (db, w) => checkTgtd(db, w.lab),
};

/**
 * tgtd holds exactly one target per live volume and none of a deleted one; each target's address
 * ACL is exactly the addresses of the volume's active grants, and its CHAP accounts exactly their
 * accounts (`<user>.<volume>`); no CHAP account exists that no active grant owns.
 */
export async function checkTgtd(db: Kysely<Database>, lab: Lab): Promise<void> {
  const vols = await db.selectFrom('volumes').select(['id', 'name', 'state']).where('state', '<>', 'deleted').execute();
  const grants = await db.selectFrom('grants').innerJoin('hosts', 'hosts.id', 'grants.host_id')
    .select(['grants.volume_id', 'grants.state', 'grants.chap_user', 'hosts.addresses']).where('grants.state', '=', 'active').execute();
  const targets = await showTargets(lab);
  expect(targets.map((t) => t.iqn).sort(), 'targets on tgtd').toEqual(vols.map((v) => `${IQN}${v.id}`).sort());
  for (const v of vols) {
    const t = targets.find((x) => x.iqn === `${IQN}${v.id}`);
    const mine = grants.filter((g) => g.volume_id === v.id);
    expect([...(t?.aclAddresses ?? [])].sort(), `${v.name}: ACL`).toEqual(mine.flatMap((g) => readJson<string[]>(g.addresses, [])).sort());
    expect([...(t?.accounts ?? [])].sort(), `${v.name}: CHAP accounts`).toEqual(mine.map((g) => tgtAccountName(g.chap_user ?? '', v.id)).sort());
  }
  expect((await showAccounts(lab)).sort(), 'CHAP accounts on tgtd').toEqual(grants.map((g) => tgtAccountName(g.chap_user ?? '', g.volume_id)).sort());
}
