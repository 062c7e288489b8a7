/** The keys of `T` whose value may be undefined. */
type UndefinedKeys<T> = { [K in keyof T]-?: undefined extends T[K] ? K : never }[keyof T];

/** `T` with every possibly-undefined key made optional and its `undefined` dropped. */
export type Compact<T> = { [K in Exclude<keyof T, UndefinedKeys<T>>]: T[K] } & { [K in UndefinedKeys<T>]?: Exclude<T[K], undefined> };

/**
 * Copies `o` without its undefined-valued keys. With `exactOptionalPropertyTypes` an optional field
 * must be absent rather than `undefined`; this builds such a shape in one literal instead of a
 * `...(x !== undefined ? { x } : {})` spread per field. Only `undefined` is dropped: `''`, `0`,
 * `false` and `null` are values.
 */
export function compact<T extends object>(o: T): Compact<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Compact<T>;
}

/** `s`, or undefined when it is empty: for query filters where an empty value means "no filter". */
export function nonEmpty(s: string | undefined): string | undefined {
  return s === '' ? undefined : s;
}
