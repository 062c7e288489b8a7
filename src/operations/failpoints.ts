import { appendFileSync } from 'node:fs';

/**
 * What a failpoint does when reached: kill the process (SIGKILL), pause forever (for an outside
 * kill -9), or hold for a while and go on (`sleep:<ms>`, to catch a pass mid-flight).
 */
export type FailpointAction = 'kill' | 'pause' | { readonly sleepMs: number };

/**
 * Named crash points for recovery tests, e.g. `volume.create/provision:after=kill`. Off (empty) in
 * production. A `pause` point appends its name to `reachedFile` and then never returns, so a test can
 * see the process sitting exactly at that step and kill -9 it from outside. A `sleep:<ms>` point
 * appends its name, waits, then appends `<name>:woke` and returns.
 */
export class Failpoints {
  private readonly points: ReadonlyMap<string, FailpointAction>;

  constructor(spec: string, private readonly reachedFile: string | null) {
    const m = new Map<string, FailpointAction>();
    for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
      const [name, action = 'kill'] = part.split('=');
      const sleep = /^sleep:(\d+)$/.exec(action);
      if (name && (action === 'kill' || action === 'pause')) m.set(name, action);
      else if (name && sleep?.[1] !== undefined) m.set(name, { sleepMs: Number(sleep[1]) });
    }
    this.points = m;
  }

  /** Parses `STOWAGE_FAILPOINTS`-style specs; an empty spec disables every point. */
  static none(): Failpoints {
    return new Failpoints('', null);
  }

  get enabled(): boolean {
    return this.points.size > 0;
  }

  /** Triggers the failpoint `name` if configured; otherwise returns at once. */
  async hit(name: string): Promise<void> {
    const action = this.points.get(name);
    if (!action) return;
    if (this.reachedFile) appendFileSync(this.reachedFile, `${name}\n`, { mode: 0o600 });
    if (typeof action === 'object') {
      await new Promise((r) => setTimeout(r, action.sleepMs));
      if (this.reachedFile) appendFileSync(this.reachedFile, `${name}:woke\n`, { mode: 0o600 });
      return;
    }
    if (action === 'kill') process.kill(process.pid, 'SIGKILL');
    await new Promise<never>(() => { /* paused until the test kills us */ });
  }
}
