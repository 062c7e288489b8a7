import type { PageOf } from '../core/models.js';
import type { StowageEvent } from '../core/schemas/event-schema.js';
import type { EventQuery } from '../store/event-repository.js';
import type { Repositories } from '../store/repositories.js';
import type { Store } from '../store/store.js';

/** Reads of the audit log for the API. */
export class EventService {
  constructor(private readonly store: Store, private readonly repos: Repositories) {}

  /** One page of events, newest first (oldest first when following with `after`). */
  async list(q: EventQuery): Promise<PageOf<StowageEvent>> {
    return this.repos.events.list(this.store.db, q);
  }
}
