import { nowIso } from './json.js';
import type { NewNodeRow, NodeRow, NodeUpdate } from './schema.js';
import type { Executor } from './store.js';
import { keysetPage, type PageRequest, type RowPage } from './keyset-page.js';

/** Storage nodes, and the control plane's own TLS identities (shared by every replica). */
export class NodeRepository {
  async insert(db: Executor, row: NewNodeRow): Promise<void> {
    await db.insertInto('nodes').values(row).execute();
  }

  async findById(db: Executor, id: string): Promise<NodeRow | undefined> {
    return db.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async findByName(db: Executor, name: string): Promise<NodeRow | undefined> {
    return db.selectFrom('nodes').selectAll().where('name', '=', name).executeTakeFirst();
  }

  async findByEnrollTokenHash(db: Executor, tokenHash: string): Promise<NodeRow | undefined> {
    return db.selectFrom('nodes').selectAll().where('enroll_token_hash', '=', tokenHash).executeTakeFirst();
  }

  async listAll(db: Executor): Promise<NodeRow[]> {
    return db.selectFrom('nodes').selectAll().orderBy('name').execute();
  }

  async page(db: Executor, page: PageRequest): Promise<RowPage<NodeRow>> {
    return keysetPage(db.selectFrom('nodes').selectAll(), 'name', page);
  }

  async update(db: Executor, id: string, patch: NodeUpdate): Promise<void> {
    await db.updateTable('nodes').set({ ...patch, updated_at: nowIso() }).where('id', '=', id).execute();
  }

  /**
   * Updates only while the node is still in `epoch`: a heartbeat or sync answer from an older
   * epoch changes nothing. True when the row was updated.
   */
  async updateInEpoch(db: Executor, id: string, epoch: number, patch: NodeUpdate): Promise<boolean> {
    const r = await db.updateTable('nodes').set({ ...patch, updated_at: nowIso() }).where('id', '=', id).where('epoch', '=', epoch).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Opens the next epoch of a node (after a restart or reconnect); returns it, or undefined when the node is gone. */
  async nextEpoch(db: Executor, id: string): Promise<number | undefined> {
    const row = await db.updateTable('nodes').set((eb) => ({ epoch: eb('epoch', '+', 1), updated_at: nowIso() })).where('id', '=', id).returning('epoch').executeTakeFirst();
    return row?.epoch;
  }

  async delete(db: Executor, id: string): Promise<void> {
    await db.deleteFrom('nodes').where('id', '=', id).execute();
  }

  /**
   * Pins an enrollment in one statement: updates only while `tokenHash` is still the node's
   * outstanding token and not expired at `nowIso`, and clears it, so of two concurrent uses of one
   * token exactly one wins. True when this call won.
   */
  async consumeEnrollToken(db: Executor, id: string, tokenHash: string, at: string, patch: NodeUpdate): Promise<boolean> {
    const r = await db.updateTable('nodes').set({ ...patch, enroll_token_hash: null, enroll_expires_at: null, updated_at: nowIso() })
      .where('id', '=', id).where('enroll_token_hash', '=', tokenHash).where('enroll_expires_at', '>', at).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Names of the backends on each of `ids` (every node when omitted), by name. */
  async backendNames(db: Executor, ids?: readonly string[]): Promise<Map<string, string[]>> {
    let q = db.selectFrom('backends').select(['node_id', 'name']).where('node_id', 'is not', null);
    if (ids) q = q.where('node_id', 'in', ids.length > 0 ? [...ids] : ['']);
    const out = new Map<string, string[]>();
    for (const r of await q.orderBy('name').execute()) {
      if (r.node_id === null) continue;
      out.set(r.node_id, [...(out.get(r.node_id) ?? []), r.name]);
    }
    return out;
  }

  async countBackends(db: Executor, id: string): Promise<number> {
    const r = await db.selectFrom('backends').select((eb) => eb.fn.countAll<number>().as('n')).where('node_id', '=', id).executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /** The control plane's identity `name` (its key still sealed), or undefined. */
  async findIdentity(db: Executor, name: string): Promise<{ certPem: string; keySealed: string } | undefined> {
    const r = await db.selectFrom('control_identities').selectAll().where('name', '=', name).executeTakeFirst();
    return r ? { certPem: r.cert_pem, keySealed: r.key_sealed } : undefined;
  }

  /** Stores identity `name` unless a replica stored one first; returns whichever is stored. */
  async insertIdentityOnce(db: Executor, name: string, identity: { readonly certPem: string }, keySealed: string): Promise<{ certPem: string; keySealed: string }> {
    await db.insertInto('control_identities').values({ name, cert_pem: identity.certPem, key_sealed: keySealed, created_at: nowIso() })
      .onConflict((oc) => oc.column('name').doNothing()).execute();
    const stored = await this.findIdentity(db, name);
    if (!stored) throw new Error(`control identity ${name} vanished after insert`);
    return stored;
  }
}
