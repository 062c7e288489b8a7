import { Type, type Static } from '@sinclair/typebox';

/**
 * The few request shapes every route group shares (paths and the wait query). Each resource's own
 * shapes live in `src/<resource>/<resource>-schema.ts`.
 */

/** Path of a resource named by name or id. */
export const RefParams = Type.Object({ ref: Type.String({ minLength: 1, maxLength: 128, description: 'name or id' }) });
/** Path of a resource named by id only. */
export const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });

/** Query of every mutation that submits an operation: answer at once (202) or once it finished. */
export const WaitQuery = Type.Object({
  wait: Type.Boolean({ default: false, description: 'wait for the operation to finish before answering; beyond 64 held waits of a tenant (1024 in all) the request is answered 202 at once and the client polls the operation' }),
  timeoutMs: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 600_000, description: 'longest wait, in ms' }),
}, { additionalProperties: false });
/** A wait query. */
export type WaitQueryT = Static<typeof WaitQuery>;
