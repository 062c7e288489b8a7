import { describeInlineMatrix } from './matrix-suite.js';

// The kill -9 matrix on postgres for the operations recorded inline (one transaction, no steps): each
// inline kind killed inside its transaction just before the commit and right after it, then restarted.
describeInlineMatrix('postgres');
