import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { StateMachine, StateRow } from './state-machine.js';
import {
  ATTACHMENT_MACHINE, ATTACHMENT_STATE_TABLE, BACKEND_MACHINE, BACKEND_STATE_TABLE, CLAIM_MACHINE, CLAIM_STATE_TABLE, GRANT_MACHINE, GRANT_STATE_TABLE,
  HOST_MACHINE, HOST_STATE_TABLE, LIVE_VOLUME_STATES, MIGRATION_MACHINE, MIGRATION_STATE_TABLE, OPERATION_MACHINE, OPERATION_STATE_TABLE,
  PROVISIONED_VOLUME_STATES, SNAPSHOT_MACHINE, SNAPSHOT_STATE_TABLE, TRANSITIONAL_VOLUME_STATES, VOLUME_MACHINE, VOLUME_STATE_TABLE,
} from './states.js';

interface Case {
  readonly table: Readonly<Record<string, StateRow<string>>>;
  readonly machine: StateMachine<string>;
  /** States a resource is born in (the insert). */
  readonly initial: readonly string[];
}

const CASES: Readonly<Record<string, Case>> = {
  volume: { table: VOLUME_STATE_TABLE, machine: VOLUME_MACHINE, initial: ['creating'] },
  snapshot: { table: SNAPSHOT_STATE_TABLE, machine: SNAPSHOT_MACHINE, initial: ['creating'] },
  grant: { table: GRANT_STATE_TABLE, machine: GRANT_MACHINE, initial: ['granting'] },
  attachment: { table: ATTACHMENT_STATE_TABLE, machine: ATTACHMENT_MACHINE, initial: ['granting'] },
  migration: { table: MIGRATION_STATE_TABLE, machine: MIGRATION_MACHINE, initial: ['starting'] },
  host: { table: HOST_STATE_TABLE, machine: HOST_MACHINE, initial: ['unknown'] },
  backend: { table: BACKEND_STATE_TABLE, machine: BACKEND_MACHINE, initial: ['offline', 'disabled'] },
  operation: { table: OPERATION_STATE_TABLE, machine: OPERATION_MACHINE, initial: ['queued', 'succeeded'] },
  claim: { table: CLAIM_STATE_TABLE, machine: CLAIM_MACHINE, initial: ['held'] },
};

/** Every state reachable from the initial ones along allowed moves (plain breadth-first search). */
function reachable(c: Case): Set<string> {
  const seen = new Set(c.initial);
  const queue = [...c.initial];
  for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
    for (const to of c.table[s]?.to ?? []) {
      if (!seen.has(to)) {
        seen.add(to);
        queue.push(to);
      }
    }
  }
  return seen;
}

describe.each(Object.entries(CASES))('the %s state table', (_name, c) => {
  const states = Object.keys(c.table);

  it('reaches every state from where the resource is born', () => {
    expect([...reachable(c)].sort()).toEqual([...states].sort());
  });

  it('gives every transitional state a resume path that is an allowed move, and settled states none', () => {
    for (const s of states) {
      const row = c.table[s];
      if (!row) throw new Error(`no row ${s}`);
      if (row.transitional) {
        expect(row.resume, `${s} has a resume path`).not.toBeNull();
        expect(row.to, `${s}'s orphan state is an allowed move`).toContain(row.resume?.orphan);
        expect(row.to.length, `${s} is not terminal`).toBeGreaterThan(0);
      } else {
        expect(row.resume, `${s} is settled`).toBeNull();
      }
    }
  });

  it('lists only known states as targets', () => {
    for (const s of states) for (const to of c.table[s]?.to ?? []) expect(states).toContain(to);
  });

  it('accepts exactly the listed moves (and staying put), and throws INTERNAL naming the move otherwise', () => {
    const state = fc.constantFrom(...states);
    fc.assert(fc.property(state, state, (from, to) => {
      const listed = from === to || (c.table[from]?.to ?? []).includes(to);
      expect(c.machine.canMove(from, to)).toBe(listed);
      if (listed) {
        expect(() => { c.machine.assertMove(from, to, 'x-1'); }).not.toThrow();
      } else {
        expect(() => { c.machine.assertMove(from, to, 'x-1'); }).toThrow(expect.objectContaining({
          code: 'INTERNAL', message: expect.stringContaining(`${from} → ${to}`) as unknown, details: expect.objectContaining({ from, to, id: 'x-1' }) as unknown,
        }));
      }
    }));
  });
});

describe('derived volume state lists', () => {
  it('counts every provisioned state as live, so usage never drops a provisioned volume (the reverting defect)', () => {
    for (const s of PROVISIONED_VOLUME_STATES) expect(LIVE_VOLUME_STATES).toContain(s);
    expect(PROVISIONED_VOLUME_STATES).toContain('reverting');
    expect(LIVE_VOLUME_STATES).toContain('reverting');
  });

  it('keeps every transitional volume state live: its bytes are on the backend or claimed there', () => {
    for (const s of TRANSITIONAL_VOLUME_STATES) expect(LIVE_VOLUME_STATES).toContain(s);
    expect([...TRANSITIONAL_VOLUME_STATES].sort()).toEqual(['creating', 'deleting', 'resizing', 'reverting']);
  });
});
