import { describe } from 'vitest';
import { backendProbeScenario } from './backend-probe.js';
import { hostDownScenario } from './host-down.js';
import { replicaLeaseScenario } from './replica-lease.js';
import { tgtdDownScenario } from './tgtd-down.js';
import { tgtdRestartScenario } from './tgtd-restart.js';

// The tier on the shipped timings: each scenario mostly waits for a default interval, so they run
// side by side (one file, concurrent suites) and the tier takes about as long as its longest wait,
// whatever number of vitest workers the machine gets (vitest runs at most maxConcurrency, 5, at once).
describe.concurrent('on the shipped defaults', () => {
  tgtdRestartScenario();
  hostDownScenario();
  backendProbeScenario();
  tgtdDownScenario();
  replicaLeaseScenario();
});
