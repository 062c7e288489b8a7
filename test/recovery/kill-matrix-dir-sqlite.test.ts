import { dirTier } from './dir-tier.js';
import { describeKillMatrix } from './matrix-suite.js';

// The generated kill -9 matrix on sqlite for every kind that runs on dir backends: each registered step
// of each kind, killed before it, at :done and after it (and during compensation), then restarted.
await describeKillMatrix('sqlite', 'dir-backed kinds', dirTier);
