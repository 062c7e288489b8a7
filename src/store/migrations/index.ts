import type { Kysely } from 'kysely';
import * as m0001 from './0001-initial.js';
import * as m0002 from './0002-placement.js';
import * as m0003 from './0003-access.js';
import * as m0004 from './0004-attachments.js';
import * as m0005 from './0005-class-offload.js';
import * as m0006 from './0006-lease-epoch.js';
import * as m0007 from './0007-list-indexes.js';
import * as m0008 from './0008-idempotency-keys.js';
import * as m0009 from './0009-idempotency-claim-lease.js';
import * as m0010 from './0010-nodes.js';
import * as m0011 from './0011-agent-credentials.js';
import * as m0012 from './0012-operation-waits.js';
import * as m0013 from './0013-users-tokens.js';
import * as m0014 from './0014-quotas.js';
import * as m0015 from './0015-tenant-visibility.js';
import * as m0016 from './0016-tenant-deleting.js';
import * as m0017 from './0017-retention.js';
import * as m0018 from './0018-placement-catalog.js';

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
  { id: '0002-placement', up: m0002.up },
  { id: '0003-access', up: m0003.up },
  { id: '0004-attachments', up: m0004.up },
  { id: '0005-class-offload', up: m0005.up },
  { id: '0006-lease-epoch', up: m0006.up },
  { id: '0007-list-indexes', up: m0007.up },
  { id: '0008-idempotency-keys', up: m0008.up },
  { id: '0009-idempotency-claim-lease', up: m0009.up },
  { id: '0010-nodes', up: m0010.up },
  { id: '0011-agent-credentials', up: m0011.up },
  { id: '0012-operation-waits', up: m0012.up },
  { id: '0013-users-tokens', up: m0013.up },
  { id: '0014-quotas', up: m0014.up },
  { id: '0015-tenant-visibility', up: m0015.up },
  { id: '0016-tenant-deleting', up: m0016.up },
  { id: '0017-retention', up: m0017.up },
  { id: '0018-placement-catalog', up: m0018.up },
];
