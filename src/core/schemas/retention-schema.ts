import { Type, type Static } from '@sinclair/typebox';
import { Nullable } from '../models.js';

/** What a retention sweep did (the last one, or the one just run). */
export const RetentionSweepSchema = Type.Object({
  at: Type.String({ description: 'when it ended' }),
  operationsPruned: Type.Integer({ description: 'finished operations deleted' }),
  eventsPruned: Type.Integer({ description: 'events deleted' }),
  operationsArchived: Type.Integer({ description: 'operations written to archive files before the delete (0 with retentionArchive off)' }),
  eventsArchived: Type.Integer({ description: 'events written to archive files before the delete' }),
  complete: Type.Boolean({ description: 'false when it was stopped (timeout, shutdown) before every row past the cutoff was done; the next sweep goes on' }),
});
/** What a retention sweep did. */
export type RetentionSweep = Static<typeof RetentionSweepSchema>;

/** GET /v1/system/retention (and POST …/sweep): the policy, what is kept, and the last sweep. */
export const RetentionReportSchema = Type.Object({
  policy: Type.Object({
    operationRetentionDays: Type.Integer({ description: 'finished operations are deleted this many days after they finished; 0 = kept forever' }),
    eventRetentionDays: Type.Integer({ description: 'events are deleted this many days after they happened; 0 = kept forever' }),
    archive: Type.Boolean({ description: 'rows are appended as NDJSON to files in archiveDir before they are deleted' }),
    archiveDir: Type.String({ description: 'where this server writes archive files' }),
  }),
  operations: Type.Object({
    kept: Type.Integer({ description: 'operations in the store, in every state' }),
    oldestFinishedAt: Nullable(Type.String({ description: 'when the oldest finished operation kept finished' })),
  }),
  events: Type.Object({
    kept: Type.Integer({ description: 'events in the store' }),
    oldestAt: Nullable(Type.String({ description: 'time of the oldest event kept' })),
  }),
  lastSweep: Nullable(RetentionSweepSchema),
});
/** The retention report. */
export type RetentionReport = Static<typeof RetentionReportSchema>;
