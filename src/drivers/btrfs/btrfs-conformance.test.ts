import { SpawnCommandRunner } from '../../system/command-runner.js';
import { describeBlockDriverConformance, qemuIoDataAccess } from '../../../test/drivers/conformance.js';
import { startLab } from '../../../test/lab/lab.js';
import { BtrfsDriver, parseBtrfsOptions } from './btrfs-driver.js';

const runner = new SpawnCommandRunner();

for (const quota of ['off', 'on'] as const) {
  describeBlockDriverConformance(`btrfs (quota=${quota}) on a loop mount`, async () => {
    const lab = await startLab({ hosts: 0, tgtd: false, btrfs: true, xfs: false });
    const driver = new BtrfsDriver(parseBtrfsOptions(new URL(`btrfs://${lab.btrfsDir}/pool`), { quota }), runner);
    return { driver, data: qemuIoDataAccess(driver, runner), cleanup: () => lab.stop() };
  }, { claims: ['snapshot', 'clone', 'revert'] });
}
