import type { Transaction, Updateable } from 'kysely';
import { StowageError } from '../core/errors.js';
import type { StateMachine } from '../core/state-machine.js';
import {
  ATTACHMENT_MACHINE, GRANT_MACHINE, HOST_MACHINE, MIGRATION_MACHINE, SNAPSHOT_MACHINE, VOLUME_MACHINE,
  type AttachmentState, type GrantState, type HostState, type MigrationState, type SnapshotState, type VolumeState,
} from '../core/states.js';
import { appendEvent } from './event-repository.js';
import { nowIso } from './json.js';
import type { VolumeId } from '../core/ids.js';
import type { AttachmentTable, Database, GrantTable, HostTable, MigrationTable, SnapshotTable, VolumeTable } from './schema.js';

/** The resources whose state moves go through `transition()`, with their table, states and writable columns. */
interface Resources {
  volume: { id: VolumeId; state: VolumeState; patch: Updateable<VolumeTable> };
  snapshot: { id: string; state: SnapshotState; patch: Updateable<SnapshotTable> };
  grant: { id: string; state: GrantState; patch: Updateable<GrantTable> };
  attachment: { id: string; state: AttachmentState; patch: Updateable<AttachmentTable> };
  migration: { id: string; state: MigrationState; patch: Updateable<MigrationTable> };
  host: { id: string; state: HostState; patch: Updateable<HostTable> };
}

/** A resource kind `transition()` moves. */
export type StatefulResource = keyof Resources;
/** The state union of resource `R`. */
export type StateOf<R extends StatefulResource> = Resources[R]['state'];
/** Columns written with a move of `R` besides `state` and `updated_at`. */
export type PatchOf<R extends StatefulResource> = Omit<Resources[R]['patch'], 'id' | 'state' | 'updated_at'>;

/** What the event of a move says (who, which action, the sentence), and where it is filed. */
export interface TransitionEvent {
  readonly actor: string;
  readonly action: string;
  readonly message: string;
  readonly operationId?: string | null;
  readonly details?: Readonly<Record<string, unknown>>;
  /** Filed under another resource (grant events are filed under their volume); default the moved resource. */
  readonly subject?: { readonly type: string; readonly id: string; readonly name: string | null };
  /** Name shown with the event when filed under the moved resource itself. */
  readonly resourceName?: string | null;
}

/** One state move of one row. */
export interface TransitionRequest<R extends StatefulResource> {
  readonly id: Resources[R]['id'];
  readonly tenantId: string;
  readonly to: StateOf<R>;
  /** Other columns written in the same statement (reason, size, handle…). */
  readonly patch?: PatchOf<R>;
  /**
   * Move only from these states: from anything else the call returns null and writes nothing (for
   * sweepers and idempotent steps that race with other writers). Without it, a row in a state that
   * may not move to `to` is a bug and throws INTERNAL.
   */
  readonly onlyFrom?: readonly StateOf<R>[];
  readonly event: TransitionEvent;
}

const MACHINES: { readonly [R in StatefulResource]: StateMachine<StateOf<R>> } = {
  volume: VOLUME_MACHINE, snapshot: SNAPSHOT_MACHINE, grant: GRANT_MACHINE, attachment: ATTACHMENT_MACHINE, migration: MIGRATION_MACHINE, host: HOST_MACHINE,
};

/** Marks the INVALID_STATE of a move another writer overtook: it is transient, and a step that hit it may run again. */
export const CONCURRENT_MOVE = 'concurrentMove';

/** The error of a move whose row another writer changed between the read and the conditional write. */
export function concurrentMoveError(resource: string, id: string, from: string, to: string): StowageError {
  return new StowageError('INVALID_STATE', `${resource} ${id} changed state while moving ${from} → ${to}; retry`, { resource, id, from, to, [CONCURRENT_MOVE]: true });
}

/** True for the error `transition` throws when the row changed between its read and its conditional write. */
export function isConcurrentMove(e: StowageError): boolean {
  return e.code === 'INVALID_STATE' && e.details[CONCURRENT_MOVE] === true;
}

/** Reads the current state of a row (undefined when it does not exist). */
async function currentState<R extends StatefulResource>(trx: Transaction<Database>, resource: R, id: Resources[R]['id']): Promise<StateOf<R> | undefined> {
  const r = await (async () => {
    switch (resource) {
      case 'volume': return trx.selectFrom('volumes').select('state').where('id', '=', id as VolumeId).executeTakeFirst();
      case 'snapshot': return trx.selectFrom('snapshots').select('state').where('id', '=', id).executeTakeFirst();
      case 'grant': return trx.selectFrom('grants').select('state').where('id', '=', id).executeTakeFirst();
      case 'attachment': return trx.selectFrom('attachments').select('state').where('id', '=', id).executeTakeFirst();
      case 'migration': return trx.selectFrom('migrations').select('state').where('id', '=', id).executeTakeFirst();
      case 'host': return trx.selectFrom('hosts').select('state').where('id', '=', id).executeTakeFirst();
    }
    throw new StowageError('INTERNAL', `no table for ${String(resource)}`, {});
  })();
  return r?.state;
}

/** Writes the move, conditioned on the state read just before (so a concurrent writer is noticed). Returns rows changed. */
async function write<R extends StatefulResource>(trx: Transaction<Database>, resource: R, id: Resources[R]['id'], from: StateOf<R>, set: Record<string, unknown>): Promise<number> {
  const r = await (async () => {
    // Each branch narrows `set` to its table's columns; PatchOf<R> has already typed them at the call.
    switch (resource) {
      case 'volume': return trx.updateTable('volumes').set(set as Updateable<VolumeTable>).where('id', '=', id as VolumeId).where('state', '=', from as VolumeState).executeTakeFirst();
      case 'snapshot': return trx.updateTable('snapshots').set(set as Updateable<SnapshotTable>).where('id', '=', id).where('state', '=', from as SnapshotState).executeTakeFirst();
      case 'grant': return trx.updateTable('grants').set(set as Updateable<GrantTable>).where('id', '=', id).where('state', '=', from as GrantState).executeTakeFirst();
      case 'attachment': return trx.updateTable('attachments').set(set as Updateable<AttachmentTable>).where('id', '=', id).where('state', '=', from as AttachmentState).executeTakeFirst();
      case 'migration': return trx.updateTable('migrations').set(set as Updateable<MigrationTable>).where('id', '=', id).where('state', '=', from as MigrationState).executeTakeFirst();
      case 'host': return trx.updateTable('hosts').set(set as Updateable<HostTable>).where('id', '=', id).where('state', '=', from as HostState).executeTakeFirst();
    }
    throw new StowageError('INTERNAL', `no table for ${String(resource)}`, {});
  })();
  return Number(r.numUpdatedRows);
}

/**
 * Moves one row of `resource` to `req.to` and records the event, both inside `trx` (the caller's
 * transaction: a claim commit, an operation insert or a lease check can share it). The move is
 * checked against the resource's compiled table of allowed moves: an illegal one throws INTERNAL and
 * writes nothing. Staying in the same state is allowed (a new reason or patch, with its event).
 * Returns the state the row was in, or null when `onlyFrom` excluded it.
 */
export async function transition<R extends StatefulResource>(trx: Transaction<Database>, resource: R, req: TransitionRequest<R>): Promise<StateOf<R> | null> {
  const from = await currentState(trx, resource, req.id);
  if (from === undefined) throw new StowageError('INTERNAL', `${resource} ${req.id} vanished before its move to ${req.to}`, { resource, id: req.id });
  if (req.onlyFrom && !req.onlyFrom.includes(from)) return null;
  MACHINES[resource].assertMove(from, req.to, req.id);
  const changed = await write(trx, resource, req.id, from, { ...(req.patch ?? {}), state: req.to, updated_at: nowIso() });
  if (changed !== 1) {
    throw concurrentMoveError(resource, req.id, from, req.to);
  }
  const e = req.event;
  await appendEvent(trx, {
    tenantId: req.tenantId, actor: e.actor, action: e.action, message: e.message, operationId: e.operationId ?? null, details: e.details ?? {},
    resourceType: e.subject?.type ?? resource, resourceId: e.subject?.id ?? req.id, resourceName: e.subject ? e.subject.name : (e.resourceName ?? null),
    from, to: req.to,
  });
  return from;
}
