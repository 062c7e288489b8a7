import { SqliteDialect, type DatabaseConnection, type Driver, type SqliteDialectConfig, type TransactionSettings } from 'kysely';
import { StowageError } from '../core/errors.js';

/**
 * SQLite has one connection, shared behind a mutex. A query on the root handle issued from inside
 * a transaction callback waits for that transaction's connection, which waits for the query: the
 * whole server would hang. This driver bounds every connection wait, so such a bug surfaces as a
 * clear error (and the transaction rolls back) instead of a wedged control plane. A late acquire is
 * released at once, so the mutex is never left held.
 */
class GuardedDriver implements Driver {
  constructor(private readonly inner: Driver, private readonly acquireTimeoutMs: number) {}

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const pending = this.inner.acquireConnection();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Give the connection back whenever it finally arrives.
        void pending.then((c) => this.inner.releaseConnection(c), () => undefined);
        reject(new StowageError('INTERNAL', `the SQLite connection stayed busy for ${this.acquireTimeoutMs} ms; a query waited on a running transaction (this is a bug: inside a transaction use its executor)`, {}));
      }, this.acquireTimeoutMs);
    });
    try {
      return await Promise.race([pending, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.inner.beginTransaction(connection, settings);
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.commitTransaction(connection);
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.rollbackTransaction(connection);
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection(connection);
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}

/** A SqliteDialect whose connection waits are bounded by `acquireTimeoutMs`. */
export class GuardedSqliteDialect extends SqliteDialect {
  constructor(config: SqliteDialectConfig, private readonly acquireTimeoutMs: number) {
    super(config);
  }

  override createDriver(): Driver {
    return new GuardedDriver(super.createDriver(), this.acquireTimeoutMs);
  }
}
