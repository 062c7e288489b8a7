import { Type, type Static, type TSchema } from '@sinclair/typebox';

const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()]);

/**
 * What this replica's background loops have done to each backend, as counters. A check that
 * "nothing changed" is only meaningful after the loop that would have changed it ran: callers read
 * the counter after their action and wait for it to move on (two passes for a full one, since a
 * pass may already have been running when they read it).
 */
export const BackendActivitySchema = Type.Object({
  reconcile: Type.Object({
    passes: Type.Integer({ description: 'export reconcile passes over this backend that this replica completed without error since it started' }),
    lastPassAt: Nullable(Type.String({ description: 'when the last of those passes finished' })),
  }),
  probe: Type.Object({
    seq: Type.Integer({ description: 'probes of this backend (periodic or refresh) this replica finished since it started' }),
    lastProbeAt: Nullable(Type.String({ description: 'when the last of those probes finished' })),
  }),
}, { description: 'this replica\'s background work on the backend, for proving that a loop ran' });

/** The activity counters of one backend. */
export type BackendActivityView = Static<typeof BackendActivitySchema>;

/** In-memory per-backend counters of reconcile passes and probes, kept by this process only. */
export class BackendActivity {
  private readonly reconciles = new Map<string, { passes: number; lastPassAt: string }>();
  private readonly probes = new Map<string, { seq: number; lastProbeAt: string }>();

  /** Records that an export reconcile pass over `backendId` finished without error. */
  reconciled(backendId: string): void {
    const passes = (this.reconciles.get(backendId)?.passes ?? 0) + 1;
    this.reconciles.set(backendId, { passes, lastPassAt: new Date().toISOString() });
  }

  /** Records that a probe of `backendId` finished (whatever it found). */
  probed(backendId: string): void {
    const seq = (this.probes.get(backendId)?.seq ?? 0) + 1;
    this.probes.set(backendId, { seq, lastProbeAt: new Date().toISOString() });
  }

  /** The counters of `backendId` (zero when nothing ran yet). */
  of(backendId: string): BackendActivityView {
    const r = this.reconciles.get(backendId);
    const p = this.probes.get(backendId);
    return {
      reconcile: { passes: r?.passes ?? 0, lastPassAt: r?.lastPassAt ?? null },
      probe: { seq: p?.seq ?? 0, lastProbeAt: p?.lastProbeAt ?? null },
    };
  }
}
