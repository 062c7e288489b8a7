import { describe, expect, it } from 'vitest';
import { isMigrationFinal, parseMigrationInfo, parseVmStatus } from './qemu-status.js';

describe('parseVmStatus', () => {
  it('reads status and running', () => {
    expect(parseVmStatus({ status: 'postmigrate', singlestep: false, running: false })).toEqual({ status: 'postmigrate', running: false });
    expect(parseVmStatus({ status: 'running', running: true })).toEqual({ status: 'running', running: true });
    expect(parseVmStatus(null)).toEqual({ status: 'unknown', running: false });
  });
});

describe('parseMigrationInfo', () => {
  it('reads a completed migration (shape of QEMU 7.2 query-migrate)', () => {
    const value = { 'blocked-reasons': [], status: 'completed', 'setup-time': 1, downtime: 8, 'total-time': 68, ram: { transferred: 1234 } };
    expect(parseMigrationInfo(value)).toEqual({ status: 'completed', totalTimeMs: 68, downtimeMs: 8, errorDesc: undefined });
  });

  it('reads a failure reason and treats an empty answer as no migration', () => {
    expect(parseMigrationInfo({ status: 'failed', 'error-desc': 'Unable to write to socket: Connection reset by peer' }).errorDesc).toMatch(/socket/);
    expect(parseMigrationInfo({})).toEqual({ status: 'none', totalTimeMs: undefined, downtimeMs: undefined, errorDesc: undefined });
  });

  it('knows the final states', () => {
    expect(['completed', 'failed', 'cancelled'].every(isMigrationFinal)).toBe(true);
    expect(['none', 'setup', 'active', 'device', 'pre-switchover', 'cancelling'].some(isMigrationFinal)).toBe(false);
  });
});
