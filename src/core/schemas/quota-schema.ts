import { Type, type Static } from '@sinclair/typebox';
import { Name, Nullable } from '../models.js';

/** The kinds of quota a scope may limit. */
export const QUOTA_KINDS = ['volumes', 'bytes', 'snapshots'] as const;
export type QuotaKind = (typeof QUOTA_KINDS)[number];

/** One limit against its usage: `limit` null = unlimited, `free` null then too. */
export const QuotaLineSchema = Type.Object({
  quota: Type.Union(QUOTA_KINDS.map((k) => Type.Literal(k))),
  /** `tenant`, or `class <name>`. */
  scope: Type.String(),
  used: Type.Integer(),
  limit: Nullable(Type.Integer()),
  free: Nullable(Type.Integer()),
});
export type QuotaLine = Static<typeof QuotaLineSchema>;

/** A tenant's quotas: a line per kind tenant-wide, and per class that has a quota row. */
export const QuotaReportSchema = Type.Object({
  tenant: Type.String(),
  lines: Type.Array(QuotaLineSchema),
});
export type QuotaReport = Static<typeof QuotaReportSchema>;

const Limit = (max: number, description: string) => Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: max, description: `${description}; null = unlimited` })));

/** Body of PUT /v1/tenants/{ref}/quota: the limits of the tenant, or of one class within it. An absent field stays as it is. */
export const SetQuotaBody = Type.Object({
  class: Type.Optional(Name),
  maxVolumes: Limit(2 ** 31 - 1, 'live volumes at most'),
  maxBytes: Limit(Number.MAX_SAFE_INTEGER, 'provisioned bytes of live volumes at most'),
  maxSnapshots: Limit(2 ** 31 - 1, 'live snapshots at most'),
}, { additionalProperties: false });
export type SetQuotaInput = Static<typeof SetQuotaBody>;
