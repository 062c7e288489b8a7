import { Type, type Static } from '@sinclair/typebox';
import { AllTenants, Nullable } from '../models.js';

/** One entry of the audit log: a state change or an audited read. */
export const EventSchema = Type.Object({
  seq: Type.Integer(),
  id: Type.String(),
  tenantId: Type.String({ description: 'the tenant it belongs to' }),
  at: Type.String(),
  actor: Type.String(),
  resourceType: Type.String(),
  resourceId: Type.String(),
  resourceName: Nullable(Type.String()),
  action: Type.String(),
  fromState: Nullable(Type.String()),
  toState: Nullable(Type.String()),
  message: Type.String(),
  details: Type.Record(Type.String(), Type.Unknown()),
  operationId: Nullable(Type.String()),
});
/** An event. */
export type StowageEvent = Static<typeof EventSchema>;

/** Query of GET /v1/events. */
export const EventListQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 50 }),
  cursor: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
  after: Type.Optional(Type.Integer({ minimum: 0, description: 'only events after this sequence number, oldest first (for following)' })),
  resource: Type.Optional(Type.String({ maxLength: 128, description: 'resource id' })),
  type: Type.Optional(Type.String({ maxLength: 32, description: 'resource type, e.g. volume' })),
  allTenants: AllTenants.properties.allTenants,
}, { additionalProperties: false });
/** The filters of an event list (the page aside). */
export type EventListFilter = Omit<Static<typeof EventListQuery>, 'cursor'>;
