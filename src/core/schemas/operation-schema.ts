import { Type, type Static } from '@sinclair/typebox';
import { AllTenants, ErrorBodySchema, ListQuery, Nullable, literals } from '../models.js';
import { OPERATION_STATES } from '../states.js';

/** An operation of the journal as the API and CLI show it. */
export const OperationSchema = Type.Object({
  id: Type.String(),
  tenantId: Type.String({ description: 'the tenant it belongs to' }),
  kind: Type.String(),
  targetType: Type.String(),
  targetId: Type.String(),
  state: literals(OPERATION_STATES),
  step: Nullable(Type.String()),
  stepsDone: Type.Array(Type.Object({ name: Type.String(), at: Type.String(), note: Type.Optional(Type.String()) })),
  attempts: Type.Integer(),
  progress: Nullable(Type.Number()),
  result: Nullable(Type.Record(Type.String(), Type.Unknown())),
  error: Nullable(ErrorBodySchema),
  actor: Type.String(),
  idempotencyKey: Nullable(Type.String()),
  waitingReason: Nullable(Type.String({ description: 'why a queued operation is waiting (a storage node that does not answer); it is retried with backoff, never failed for it' })),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  finishedAt: Nullable(Type.String()),
});
/** An operation. */
export type Operation = Static<typeof OperationSchema>;

/** Query of GET /v1/operations. */
export const OperationListQuery = Type.Composite([ListQuery, AllTenants, Type.Object({
  state: Type.Optional(literals(OPERATION_STATES)),
  target: Type.Optional(Type.String({ maxLength: 128 })),
})], { additionalProperties: false });
/** The filters of an operation list (the page aside). */
export type OperationListFilter = Omit<Static<typeof OperationListQuery>, 'cursor'>;

/** Query of GET /v1/operations/{id}: long-poll until it finished. */
export const OperationGetQuery = Type.Object({ waitMs: Type.Integer({ minimum: 0, maximum: 600_000, default: 0 }) }, { additionalProperties: false });

/** Answer of POST /v1/hosts/{ref}/evacuate: one operation per attachment moved. */
export const OperationList = Type.Object({ items: Type.Array(OperationSchema) });
