import { hostsTier } from './hosts-tier.js';
import { describeKillMatrix } from './matrix-suite.js';

// The generated kill -9 matrix on sqlite for the kinds whose effect lives on hosts (attach, detach, fence, migration start/complete/abort),
// with real agents, QEMU VMs and tgtd: each registered step killed before it, at :done and after it, then restarted; every attachment
// attached or gone, every migration final, the fenced host fenced, tgtd's ACLs/sessions the active grants, no stray stw- node in a VM.
await describeKillMatrix('sqlite', 'host kinds (real agents, QEMU and tgtd in test/lab)', hostsTier());
