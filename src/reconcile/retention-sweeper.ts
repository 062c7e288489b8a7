import { join } from 'node:path';
import { setImmediate as yieldToOthers } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { StowageError } from '../core/errors.js';
import { DEFAULT_TENANT_ID } from '../core/ids.js';
import type { RetentionReport, RetentionSweep } from '../core/schemas/retention-schema.js';
import { FINISHED_OPERATION_STATES } from '../core/states.js';
import { toEvent } from '../store/event-repository.js';
import { runExclusively } from '../store/loop-lock.js';
import { toOperation } from '../store/operation-repository.js';
import type { Repositories } from '../store/repositories.js';
import type { Store } from '../store/store.js';
import { fsyncDir, writePrivateFileDurably } from '../system/durable-write.js';
import { ensurePrivateDir } from '../system/private-files.js';

/** Rows deleted per transaction: small enough that no sweep holds the write lock for long. */
export const RETENTION_BATCH_ROWS = 1000;

const DAY_MS = 86_400_000;

/** The retention settings a sweeper follows (from the config). */
export interface RetentionPolicy {
  /** Days after it finished that a finished operation is deleted; 0 = never. */
  readonly operationRetentionDays: number;
  /** Days after it happened that an event is deleted; 0 = never. */
  readonly eventRetentionDays: number;
  /** Archive rows to NDJSON files in `archiveDir` before deleting them. */
  readonly archive: boolean;
  readonly archiveDir: string;
}

/** The policy the config asks for; archives go to `<dataDir>/archive`. */
export function retentionPolicy(config: Config): RetentionPolicy {
  return {
    operationRetentionDays: config.operationRetentionDays, eventRetentionDays: config.eventRetentionDays,
    archive: config.retentionArchive, archiveDir: join(config.dataDir, 'archive'),
  };
}

/** What pruning one kind of row did. */
interface Pruned {
  pruned: number;
  archived: number;
  complete: boolean;
}

/** One kind of row to prune: how to read a batch, archive it and delete it. */
interface PruneTarget<R> {
  /** File name prefix, e.g. `operations`. */
  readonly kind: string;
  next(): Promise<R[]>;
  /** Deletes what is still prunable of `rows`; returns how many went. */
  remove(rows: readonly R[]): Promise<number>;
  /** The row as archived (the API model, one JSON line). */
  toJson(row: R): unknown;
  /** A key naming the row in the archive file name (ordered the way batches are read). */
  keyOf(row: R): string;
}

/**
 * Keeps the operation journal and the event log bounded: deletes finished operations and events
 * older than the configured number of days, in batches of RETENTION_BATCH_ROWS rows per transaction,
 * archiving each batch first when `archive` is on. Queued and running operations are never deleted,
 * nor a finished one a held claim still points at (see RetentionRepository). A sweep that deletes
 * anything records a `retention-swept` event; every sweep records what it did (GET /v1/system/retention).
 */
export class RetentionSweeper {
  /** Sweeps of this process run one after another (the loop's and one asked for through the API). */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly repos: Repositories,
    readonly policy: RetentionPolicy,
    private readonly logger: Logger,
    private readonly batchRows: number = RETENTION_BATCH_ROWS,
  ) {}

  /** Logs, once at start, a table kept forever: an explicit choice, but one that grows without bound. */
  warnIfUnbounded(): void {
    if (this.policy.operationRetentionDays === 0) this.logger.warn('operations are kept forever (operationRetentionDays: 0): the operation journal grows without bound');
    if (this.policy.eventRetentionDays === 0) this.logger.warn('events are kept forever (eventRetentionDays: 0): the event log grows without bound');
  }

  /**
   * One sweep, after any sweep of this process still running. Stops between batches when `signal`
   * aborts (the result then says `complete: false`). Throws INVALID_STATE when another replica is
   * sweeping the same store right now.
   */
  sweep(signal?: AbortSignal, now: Date = new Date()): Promise<RetentionSweep> {
    const run = this.tail.then(() => this.sweepExclusively(signal, now));
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** The policy, what is kept, and what the last sweep (of any replica) did. */
  async report(): Promise<RetentionReport> {
    const [operations, events, last] = [await this.repos.retention.keptOperations(this.store.db), await this.repos.retention.keptEvents(this.store.db), await this.repos.retention.lastSweep(this.store.db)];
    return {
      policy: { ...this.policy },
      operations: { kept: operations.kept, oldestFinishedAt: operations.oldestAt },
      events,
      lastSweep: last ? {
        at: last.at, operationsPruned: Number(last.operations_pruned), eventsPruned: Number(last.events_pruned),
        operationsArchived: Number(last.operations_archived), eventsArchived: Number(last.events_archived), complete: Number(last.complete) === 1,
      } : null,
    };
  }

  private async sweepExclusively(signal: AbortSignal | undefined, now: Date): Promise<RetentionSweep> {
    const r = await runExclusively(this.store, 'retention-sweep', () => this.sweepOnce(signal, now));
    if (!r.ran) throw new StowageError('INVALID_STATE', 'another replica is running a retention sweep now; ask again when it is done', {});
    return r.value;
  }

  private async sweepOnce(signal: AbortSignal | undefined, now: Date): Promise<RetentionSweep> {
    const ops: Pruned = { pruned: 0, archived: 0, complete: true };
    if (this.policy.operationRetentionDays > 0) {
      const before = cutoff(now, this.policy.operationRetentionDays);
      for (const state of FINISHED_OPERATION_STATES) {
        const r = await this.prune({
          kind: `operations-${state}`,
          next: () => this.repos.retention.listPrunableOperations(this.store.db, state, before, this.batchRows),
          remove: (rows) => this.store.transaction((trx) => this.repos.retention.deleteOperations(trx, rows.map((o) => o.id), before)),
          toJson: toOperation,
          keyOf: (o) => o.id,
        }, signal);
        add(ops, r);
      }
    }
    const evs: Pruned = { pruned: 0, archived: 0, complete: true };
    if (this.policy.eventRetentionDays > 0) {
      const before = cutoff(now, this.policy.eventRetentionDays);
      add(evs, await this.prune({
        kind: 'events',
        next: () => this.repos.retention.listPrunableEvents(this.store.db, before, this.batchRows),
        remove: (rows) => this.store.transaction((trx) => this.repos.retention.deleteEvents(trx, rows.map((e) => Number(e.seq)), before)),
        toJson: toEvent,
        keyOf: (e) => String(e.seq),
      }, signal));
    }
    const sweep: RetentionSweep = {
      at: new Date().toISOString(), operationsPruned: ops.pruned, eventsPruned: evs.pruned,
      operationsArchived: ops.archived, eventsArchived: evs.archived, complete: ops.complete && evs.complete,
    };
    await this.store.transaction(async (trx) => {
      await this.repos.retention.recordSweep(trx, {
        at: sweep.at, operations_pruned: sweep.operationsPruned, events_pruned: sweep.eventsPruned,
        operations_archived: sweep.operationsArchived, events_archived: sweep.eventsArchived, complete: sweep.complete ? 1 : 0,
      });
      if (sweep.operationsPruned + sweep.eventsPruned === 0) return;
      await this.repos.events.append(trx, {
        tenantId: DEFAULT_TENANT_ID, actor: 'system', resourceType: 'system', resourceId: 'retention', action: 'retention-swept',
        message: `retention deleted ${String(sweep.operationsPruned)} finished operations and ${String(sweep.eventsPruned)} events`
          + (this.policy.archive ? ` (archived to ${this.policy.archiveDir})` : ' (archive off)'),
        details: { ...sweep, operationRetentionDays: this.policy.operationRetentionDays, eventRetentionDays: this.policy.eventRetentionDays },
      });
    });
    if (sweep.operationsPruned + sweep.eventsPruned > 0) this.logger.info({ ...sweep }, 'retention sweep deleted old operations and events');
    return sweep;
  }

  /**
   * Prunes one kind of row, a batch at a time, until none is left past the cutoff or `signal`
   * aborts. Each batch is archived (file written, fsynced, renamed into place, directory fsynced)
   * before its rows are deleted, so a kill -9 at any point loses no row: at worst the rows of the
   * batch in flight are still in the store and already archived, and the next sweep archives them
   * again. Batches are read oldest first and named by their first and last row, so a full batch is
   * read again whole and its file rewritten under the same name, replaced atomically; a batch that
   * was short may come back longer (rows that passed the cutoff since sort after it) and land in a
   * new file repeating its rows. Archive readers dedupe by id (operations) or seq (events).
   */
  private async prune<R>(t: PruneTarget<R>, signal: AbortSignal | undefined): Promise<Pruned> {
    const done: Pruned = { pruned: 0, archived: 0, complete: false };
    let dirReady = false;
    while (signal?.aborted !== true) {
      const rows = await t.next();
      const first = rows[0];
      const last = rows.at(-1);
      if (first === undefined || last === undefined) {
        done.complete = true;
        break;
      }
      if (this.policy.archive) {
        if (!dirReady) {
          await this.prepareArchiveDir();
          dirReady = true;
        }
        const lines = rows.map((r) => `${JSON.stringify(t.toJson(r))}\n`).join('');
        await writePrivateFileDurably(this.policy.archiveDir, `${t.kind}-${t.keyOf(first)}-${t.keyOf(last)}.ndjson`, lines);
        done.archived += rows.length;
      }
      const removed = await t.remove(rows);
      done.pruned += removed;
      // Nothing of a batch went (each row changed under us): stop rather than read it again; the next sweep goes on.
      if (removed === 0) break;
      if (rows.length < this.batchRows) {
        done.complete = true;
        break;
      }
      // Between batches, let requests and workers have the store (and the event loop).
      await yieldToOthers();
    }
    return done;
  }

  /** Creates the archive directory 0700, and makes its entry in the data dir durable. */
  private async prepareArchiveDir(): Promise<void> {
    ensurePrivateDir(this.policy.archiveDir);
    await fsyncDir(join(this.policy.archiveDir, '..'));
  }
}

function cutoff(now: Date, days: number): string {
  return new Date(now.getTime() - days * DAY_MS).toISOString();
}

function add(into: Pruned, r: Pruned): void {
  into.pruned += r.pruned;
  into.archived += r.archived;
  into.complete &&= r.complete;
}
