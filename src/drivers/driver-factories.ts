import { btrfsDriverFactory } from './btrfs/btrfs-driver.js';
import { dirDriverFactory } from './dir/dir-driver.js';
import type { DriverFactory } from './sdk/types.js';
import { tgtDriverFactory } from './tgt/tgt-driver.js';

/** Every driver this build knows, by URI scheme: the control plane and `stowage node` register the same list. */
export const DRIVER_FACTORIES: readonly DriverFactory[] = [dirDriverFactory, btrfsDriverFactory, tgtDriverFactory];
