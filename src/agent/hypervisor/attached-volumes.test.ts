import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildAttachedVolumes, parseNamedBlockNodes, parseQomList, parseQueryBlock } from './attached-volumes.js';

/** Captured from QEMU 7.2 with one iSCSI volume (CHAP via password-secret) attached as scsi-hd. */
const fixture = (name: string): unknown => JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8'));
const VOL = 'vol-nkayeqegvf5vopzlsvq7';

describe('parsers over captured QEMU output', () => {
  it('parses query-block', () => {
    expect(parseQueryBlock(fixture('query-block-iscsi.json'))).toEqual([{ qdev: `stw-dev-${VOL}`, nodeName: `stw-${VOL}` }]);
    expect(parseQueryBlock([{ device: 'ide0', qdev: '', locked: false }])).toEqual([{ qdev: undefined, nodeName: undefined }]);
    expect(parseQueryBlock('nonsense')).toEqual([]);
  });

  it('parses query-named-block-nodes', () => {
    expect(parseNamedBlockNodes(fixture('query-named-block-nodes-iscsi.json'))).toEqual([
      { nodeName: `stw-${VOL}`, driver: 'raw', readOnly: false, sizeBytes: 67108864 },
      { nodeName: `stw-${VOL}-p`, driver: 'iscsi', readOnly: false, sizeBytes: 67108864 },
    ]);
  });

  it('parses qom-list children only', () => {
    expect(parseQomList(fixture('qom-list-objects.json'))).toEqual([`stw-${VOL}-sec`, 'pc.ram']);
    expect(parseQomList(fixture('qom-list-peripheral.json'))).toContain(`stw-dev-${VOL}`);
  });
});

describe('buildAttachedVolumes', () => {
  const full = {
    backends: parseQueryBlock(fixture('query-block-iscsi.json')),
    nodes: parseNamedBlockNodes(fixture('query-named-block-nodes-iscsi.json')),
    objectIds: parseQomList(fixture('qom-list-objects.json')),
    peripheralIds: parseQomList(fixture('qom-list-peripheral.json')),
  };

  it('reports a fully attached iSCSI volume', () => {
    expect(buildAttachedVolumes(full)).toEqual([{
      volumeId: VOL, state: 'attached', deviceId: `stw-dev-${VOL}`, nodeName: `stw-${VOL}`, protocolNodeName: `stw-${VOL}-p`,
      secretId: `stw-${VOL}-sec`, protocol: 'iscsi', format: 'raw', readOnly: false, sizeBytes: 67108864,
    }]);
  });

  it('reports leftovers of an interrupted detach as partial', () => {
    const afterDeviceDel = buildAttachedVolumes({ ...full, backends: [], peripheralIds: ['scsi0'] });
    expect(afterDeviceDel).toMatchObject([{ volumeId: VOL, state: 'partial', deviceId: undefined, nodeName: `stw-${VOL}` }]);
    const onlySecret = buildAttachedVolumes({ backends: [], nodes: [], peripheralIds: [], objectIds: [`stw-${VOL}-sec`] });
    expect(onlySecret).toMatchObject([{ volumeId: VOL, state: 'partial', secretId: `stw-${VOL}-sec`, protocol: undefined }]);
  });

  it('reports a device whose drive is not our node as partial', () => {
    const swapped = buildAttachedVolumes({ ...full, backends: [{ qdev: `stw-dev-${VOL}`, nodeName: '#block999' }] });
    expect(swapped[0]?.state).toBe('partial');
  });

  it('ignores everything not named by us', () => {
    expect(buildAttachedVolumes({
      backends: [{ qdev: 'disk0', nodeName: 'drive0' }],
      nodes: [{ nodeName: 'drive0', driver: 'qcow2', readOnly: false, sizeBytes: 1 }],
      objectIds: ['pc.ram', 'sec0'],
      peripheralIds: ['scsi0', 'disk0'],
    })).toEqual([]);
  });
});
