import { processContext } from './context.js';
import { runCli } from './program.js';

/** The `stowage` command (bin/stowage.js imports this module). */
process.exitCode = await runCli(process.argv.slice(2), processContext());
