import { describeStaleReplicaCases } from './matrix-suite.js';

// Issue 9, point 4: a replica frozen past its lease while another takes over and finishes must
// change nothing once it wakes up — two `serve` replicas on one PostgreSQL database.
describeStaleReplicaCases('postgres');
