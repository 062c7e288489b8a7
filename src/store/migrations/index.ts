import type { Kysely } from 'kysely';
import * as m0001 from './0001-initial.js';

/** The SQL dialect a migration runs on; only DDL that truly differs may branch on it. */
export type MigrationDialect = 'sqlite' | 'postgres';

/** A numbered, immutable migration. Never edit a released one: add the next number. */
export interface Migration {
  readonly id: string;
  up(db: Kysely<unknown>, dialect: MigrationDialect): Promise<void>;
}

/** Every migration in order. Append only. */
export const MIGRATIONS: readonly Migration[] = [
  { id: '0001-initial', up: m0001.up },
];
