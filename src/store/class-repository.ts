import type { ClassRow, ClassUpdate, NewClassRow } from './schema.js';
import type { Executor } from './store.js';
import { keysetPage, type PageRequest, type RowPage } from './keyset-page.js';
import { jsonListHolding } from './json.js';

/** Storage classes. */
export class ClassRepository {
  async insert(db: Executor, row: NewClassRow): Promise<void> {
    await db.insertInto('classes').values(row).execute();
  }

  async findById(db: Executor, id: string): Promise<ClassRow | undefined> {
    return db.selectFrom('classes').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async findByName(db: Executor, name: string): Promise<ClassRow | undefined> {
    return db.selectFrom('classes').selectAll().where('name', '=', name).executeTakeFirst();
  }

  /** The default class, if one is set. */
  async findDefault(db: Executor): Promise<ClassRow | undefined> {
    return db.selectFrom('classes').selectAll().where('is_default', '=', 1).executeTakeFirst();
  }

  async listAll(db: Executor): Promise<ClassRow[]> {
    return db.selectFrom('classes').selectAll().orderBy('name').execute();
  }

  /** One page of classes by name; with `visibleTo`, only those shared or restricted to include that tenant. */
  async page(db: Executor, page: PageRequest, visibleTo?: string): Promise<RowPage<ClassRow>> {
    let q = db.selectFrom('classes').selectAll();
    if (visibleTo !== undefined) q = q.where((eb) => eb.or([eb('tenants', 'is', null), eb('tenants', 'like', jsonListHolding(visibleTo))]));
    return keysetPage(q, 'name', page);
  }

  async update(db: Executor, id: string, patch: ClassUpdate): Promise<void> {
    await db.updateTable('classes').set(patch).where('id', '=', id).execute();
  }

  /** Clears the default flag on every class (before setting a new default in the same transaction). */
  async clearDefault(db: Executor): Promise<void> {
    await db.updateTable('classes').set({ is_default: 0 }).where('is_default', '=', 1).execute();
  }

  async delete(db: Executor, id: string): Promise<void> {
    await db.deleteFrom('classes').where('id', '=', id).execute();
  }

  /** Live (not deleted) volumes created with the class. */
  /** Live volumes of the class (of one tenant's, with `tenantId`). */
  async countVolumes(db: Executor, id: string, tenantId?: string): Promise<number> {
    let q = db.selectFrom('volumes').select((eb) => eb.fn.countAll<number>().as('n')).where('class_id', '=', id).where('state', '<>', 'deleted');
    if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId);
    const r = await q.executeTakeFirstOrThrow();
    return Number(r.n);
  }
}
