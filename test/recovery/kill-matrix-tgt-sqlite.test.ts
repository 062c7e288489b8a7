import { tgtTier } from './tgt-tier.js';
import { describeKillMatrix } from './matrix-suite.js';

// The generated kill -9 matrix on sqlite for the kinds whose effect lives in tgtd (grants, volumes on tgt): each registered step
// of each kind, killed before it, at :done and after it then restarted; tgtd's targets, ACLs and CHAP accounts must match the store.
await describeKillMatrix('sqlite', 'tgt-backed kinds (real tgtd in test/lab)', tgtTier);
