import { Type, type Static } from '@sinclair/typebox';

/**
 * `limit` and `cursor` of every list route (the same bounds as volumes). The lists page in SQL
 * (src/store/keyset-page.ts), which also reads and writes the cursor.
 */
export const PageQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'nextCursor of the previous page' })),
});
export type PageQueryT = Static<typeof PageQuery>;
