/** Structured fields for one log line. Never holds secrets. */
export type LogFields = Readonly<Record<string, unknown>>;

/**
 * The logging port of the host agent: the subset of pino's API the agent uses, so a pino logger
 * fits as is and tests can capture every line.
 */
export interface AgentLogger {
  debug(fields: LogFields, msg: string): void;
  info(fields: LogFields, msg: string): void;
  warn(fields: LogFields, msg: string): void;
  error(fields: LogFields, msg: string): void;
}

/** A logger that drops everything (the default when none is given). */
export const silentLogger: AgentLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
