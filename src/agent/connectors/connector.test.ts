import { describe, expect, it } from 'vitest';
import type { ConnectionInfo } from '../../drivers/sdk/types.js';
import { assertModeAllowed, selectConnector, type Connector } from './connector.js';
import { FileConnector } from './file-connector.js';
import { QemuIscsiConnector } from './qemu-iscsi-connector.js';

describe('selectConnector', () => {
  const connectors: Connector[] = [new QemuIscsiConnector({ initiatorName: 'iqn.2024-01.x:h1' }), new FileConnector({ allowedRoots: ['/srv'] })];

  it('picks the connector of the protocol', () => {
    expect(selectConnector(connectors, { protocol: 'iscsi' }).protocol).toBe('iscsi');
    expect(selectConnector(connectors, { protocol: 'file' }).protocol).toBe('file');
  });

  it('says which protocols it has when none fits', () => {
    expect(() => selectConnector(connectors, { protocol: 'nfs' })).toThrow(/no connector for protocol nfs \(have iscsi, file\)/);
    expect(() => selectConnector([], { protocol: 'nfs' })).toThrow(expect.objectContaining({ code: 'CAPABILITY_MISSING' }) as Error);
  });
});

describe('assertModeAllowed', () => {
  const info = (mode: 'ro' | 'rw'): ConnectionInfo => ({ protocol: 'iscsi', mode });
  it('allows ro on any grant and rw only on an rw grant', () => {
    expect(() => { assertModeAllowed(info('rw'), 'rw', 'v'); }).not.toThrow();
    expect(() => { assertModeAllowed(info('rw'), 'ro', 'v'); }).not.toThrow();
    expect(() => { assertModeAllowed(info('ro'), 'ro', 'v'); }).not.toThrow();
    expect(() => { assertModeAllowed(info('ro'), 'rw', 'v'); }).toThrow(expect.objectContaining({ code: 'INVALID_STATE' }) as Error);
  });
});
