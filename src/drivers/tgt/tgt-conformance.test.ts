import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpawnCommandRunner } from '../../system/command-runner.js';
import { describeBlockDriverConformance, qemuIoDataAccess } from '../../../test/drivers/conformance.js';
import { startLab, type Lab } from '../../../test/lab/lab.js';
import { createTgtDriver } from './tgt-driver.js';

const runner = new SpawnCommandRunner();

const backings = {
  'btrfs backing': (lab: Lab) => `btrfs://${lab.btrfsDir}/luns`,
  'dir backing on XFS (reflink)': (lab: Lab) => `dir://${lab.xfsDir}/luns`,
} as const;

for (const [label, backingUri] of Object.entries(backings)) {
  describeBlockDriverConformance(`tgt over a real tgtd, ${label}`, async () => {
    const lab = await startLab({ hosts: 0, tgtd: true, btrfs: label.startsWith('btrfs'), xfs: !label.startsWith('btrfs') });
    const dataDir = await mkdtemp(join(tmpdir(), 'stowage-tgt-conf-'));
    if (!label.startsWith('btrfs')) await runner.run('mkdir', ['-p', `${lab.xfsDir}/luns`]);
    const uri = `tgt://${lab.portal}?backing=${encodeURIComponent(backingUri(lab))}&control=${String(lab.tgtdControlPort)}&iqnPrefix=${encodeURIComponent(lab.iqnPrefix)}`;
    const driver = createTgtDriver(new URL(uri), {}, { runner, dataDir });
    return {
      driver,
      data: qemuIoDataAccess(driver, runner),
      cleanup: async () => {
        await lab.stop();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  }, { claims: ['snapshot', 'clone', 'revert'] }); // both backing stores have them, and tgt passes them through
}
