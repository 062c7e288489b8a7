import { Type, type Static } from '@sinclair/typebox';
import { Name, Nullable, Ref, literals } from '../models.js';
import { MIGRATION_STATES } from '../states.js';
import { OperationSchema } from './operation-schema.js';

/** A live migration's storage handoff, as the API and CLI show it. */
export const MigrationSchema = Type.Object({
  id: Type.String(),
  tenantId: Type.String({ description: 'the tenant it belongs to' }),
  instance: Type.String(),
  fromHost: Type.String(),
  toHost: Type.String(),
  state: literals(MIGRATION_STATES),
  stateReason: Nullable(Type.String()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
/** A migration. */
export type Migration = Static<typeof MigrationSchema>;

/** An instance moving between two hosts: body of POST /v1/migrations and /v1/migrations/find. */
export const MigrationBody = Type.Object({ instance: Name, from: Ref, to: Ref }, { additionalProperties: false });
/** A migration's key. */
export type MigrationKeyT = Static<typeof MigrationBody>;

/** Answer of migration start, complete and abort. */
export const MigrationWithOperation = Type.Object({ migration: MigrationSchema, operation: OperationSchema });
/** A migration and its operation. */
export type MigrationWithOperationT = Static<typeof MigrationWithOperation>;
