import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { NAME_PATTERN } from './names.js';
import { ACCESS_MODES } from './states.js';

/**
 * The wire building blocks every resource's schema shares. Each resource's own shapes (the
 * resource and its requests) live in `src/<resource>/<resource>-schema.ts`; only what several of
 * them use is here, so core stays the innermost layer and imports nothing outward.
 */

/** A string enum schema whose static type is the union of its values. */
export const literals = <const T extends readonly string[]>(values: T, options: { default?: T[number]; description?: string } = {}) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
/** `s` or null. */
export const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()]);
/** A string on the wire whose static type is a branded id, so services hand out VolumeId, not string. */
export const IdString = <T extends string>() => Type.Unsafe<T>(Type.String());

/** A resource name as our names are written (never shaped like an id). */
export const Name = Type.String({ pattern: NAME_PATTERN, minLength: 1, maxLength: 63, description: 'letters, digits, ".", "_" or "-"; starts with a letter or digit' });
/** A size in bytes. */
export const Bytes = Type.Integer({ minimum: 0, description: 'bytes' });
/** A reference to another resource in a body or query: its name or its id. */
export const Ref = Type.String({ minLength: 1, maxLength: 128 });
/** Access mode of a grant or an attachment (read-write or read-only). */
export const AccessModeSchema = literals(ACCESS_MODES);
/** The access mode of a request: read-write unless it says otherwise. */
export const RequestedAccessMode = literals(ACCESS_MODES, { default: 'rw' });

/** The body of every error answer, and of a failed operation's `error`. */
export const ErrorBodySchema = Type.Object({
  code: Type.String(),
  message: Type.String(),
  details: Type.Record(Type.String(), Type.Unknown()),
}, { $id: 'Error', description: 'every error: a stable code, a sentence saying what to do, and structured details' });
/** An error body. */
export type ErrorBody = Static<typeof ErrorBodySchema>;

/** A page of results with the cursor for the next page (null at the end). */
export const Page = <T extends TSchema>(item: T) => Type.Object({ items: Type.Array(item), nextCursor: Nullable(Type.String()) });
/** A page of `T`. */
export type PageOf<T> = { items: T[]; nextCursor: string | null };

/** `limit` and `cursor` of the lists paged in the store (volumes, operations). */
export const ListQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  cursor: Type.Optional(Type.String({ maxLength: 256 })),
}, { additionalProperties: false });

/** `limit` and `cursor` of the lists paged in memory by `pageOf` (the same bounds as volumes). */
export const PageQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'nextCursor of the previous page' })),
});
/** A page request. */
export type PageQueryT = Static<typeof PageQuery>;
/** The query of a list with no filters: just the page. */
export const PlainListQuery = Type.Composite([PageQuery], { additionalProperties: false });

/** `allTenants` of a list of tenant resources: an admin's view of every tenant's, not only its own (refused for other roles). */
export const AllTenants = Type.Object({ allTenants: Type.Optional(Type.Boolean({ description: 'admins only: every tenant\'s, not just their own' })) });
/** The query of a list of tenant resources with no other filter: the page and `allTenants`. */
export const TenantListQuery = Type.Composite([PageQuery, AllTenants], { additionalProperties: false });


/** Opaque JSON the driver returns at create and gets back on every later call. */
export type DriverHandle = Readonly<Record<string, unknown>>;

/** In a body: the tenants (names or ids) a backend, class or host is restricted to; null: shared with every tenant. */
export const TenantRestrictionBody = Nullable(Type.Array(Ref, { maxItems: 256, uniqueItems: true, description: 'restrict to these tenants (names or ids); null: shared with every tenant' }));
/** As shown to admins: the names of the tenants it is restricted to; null: shared (absent for other roles). */
export const TenantRestriction = Type.Optional(Nullable(Type.Array(Type.String(), { description: 'the tenants it is restricted to; null: shared with every tenant (shown to admins only)' })));
