import { pino } from 'pino';
import { loadConfig } from './config/config.js';
import { StowageError } from './core/errors.js';
import { startServer } from './server.js';

/**
 * Composition root of `stowage serve` (also `npm start`): the only place that reads process.env.
 * Usage: node dist/main.js serve [--config FILE]
 */
export async function serveMain(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  const i = argv.indexOf('--config');
  const file = i >= 0 ? argv[i + 1] : env.STOWAGE_CONFIG_FILE;
  const config = loadConfig(file, env);
  const logger = pino({ level: config.logLevel });
  const server = await startServer(config, logger);
  const shutdown = (signal: string): void => {
    logger.info({ signal }, 'shutting down: no new work, draining operations');
    server.stop().then(() => process.exit(0), (err: unknown) => { logger.error({ err }, 'shutdown failed'); process.exit(1); });
  };
  process.once('SIGTERM', () => { shutdown('SIGTERM'); });
  process.once('SIGINT', () => { shutdown('SIGINT'); });
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (invokedDirectly) {
  const [cmd = 'serve', ...rest] = process.argv.slice(2);
  if (cmd !== 'serve') {
    process.stderr.write(`usage: node dist/main.js serve [--config FILE]\n`);
    process.exit(2);
  }
  serveMain(rest, process.env).catch((err: unknown) => {
    const msg = err instanceof StowageError ? `${err.code}: ${err.message}` : String(err instanceof Error ? err.stack : err);
    process.stderr.write(`stowage serve: ${msg}\n`);
    process.exit(1);
  });
}
