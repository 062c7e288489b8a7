import { StowageError } from '../core/errors.js';
import type { Operation } from '../core/schemas/operation-schema.js';
import type { PageOf } from '../core/models.js';
import { toOperation, type OperationQuery } from '../store/operation-repository.js';
import type { Repositories } from '../store/repositories.js';
import type { Store } from '../store/store.js';
import type { OperationEngine } from './engine.js';

/** Reads of the operation journal for the API: a tenant sees only its own operations. */
export class OperationService {
  constructor(private readonly store: Store, private readonly repos: Repositories, private readonly engine: OperationEngine) {}

  /** One page of the tenant's operations, newest first. */
  async list(q: OperationQuery): Promise<PageOf<Operation>> {
    const { rows, nextCursor } = await this.repos.operations.list(this.store.db, q);
    return { items: rows.map(toOperation), nextCursor };
  }

  /**
   * One operation of the tenant (OPERATION_NOT_FOUND for another tenant's, so ids do not leak);
   * with `waitMs` > 0, answers once it finished or that many milliseconds passed.
   */
  async get(id: string, tenantId: string, waitMs = 0): Promise<Operation> {
    const row = await this.repos.operations.findById(this.store.db, id);
    if (row?.tenant_id !== tenantId) {
      throw new StowageError('OPERATION_NOT_FOUND', `operation ${id} does not exist`, { id });
    }
    return waitMs > 0 ? this.engine.waitFor(row.id, waitMs) : toOperation(row);
  }
}
