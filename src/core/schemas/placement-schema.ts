import { Type, type Static } from '@sinclair/typebox';
import { Nullable } from '../models.js';
import { PLACEMENT_POLICIES, type PlacementPolicy } from '../states.js';

/** The policies, re-exported beside the schemas that name them (the list itself is in core/states, free of TypeBox for the CLI). */
export { PLACEMENT_POLICIES, type PlacementPolicy };

/** Why a volume is where it is: the decision placement recorded when it placed it. */
export const PlacementSummarySchema = Type.Object({
  policy: Type.String(),
  className: Nullable(Type.String()),
  candidates: Type.Integer(),
  rejected: Type.Record(Type.String(), Type.Integer(), { description: 'number of backends each filter rejected' }),
  top: Type.Array(Type.Object({ backend: Type.String(), score: Type.Number(), usableBytes: Type.Integer(), cost: Type.Integer() })),
  winner: Nullable(Type.String()),
  pinned: Type.Boolean(),
  attempts: Type.Array(Type.Object({ backend: Type.String(), ok: Type.Boolean(), error: Nullable(Type.String()) })),
  reason: Type.String({ description: 'one sentence an operator understands' }),
});
/** A placement decision record. */
export type PlacementSummary = Static<typeof PlacementSummarySchema>;

/** One backend's verdict in a dry run. */
export const VerdictSchema = Type.Object({
  backend: Type.String(),
  passed: Type.Boolean(),
  filter: Nullable(Type.String()),
  reason: Nullable(Type.String()),
  usableBytes: Type.Integer(),
  cost: Type.Integer(),
  score: Nullable(Type.Number()),
});

/** Answer of POST /v1/placements/dry-run: every backend's verdict and the winner. */
export const DryRunResponse = Type.Object({
  winner: Nullable(Type.String()),
  reason: Type.String(),
  verdicts: Type.Array(VerdictSchema),
  summary: Type.Record(Type.String(), Type.Unknown()),
});
/** A dry-run answer. */
export type DryRun = Static<typeof DryRunResponse>;
