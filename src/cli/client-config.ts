import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { compact } from '../core/compact.js';
import { usageError } from './errors.js';

/** Where the CLI talks to: the API's base URL and the bearer token (absent when none is configured). */
export interface ClientConfig {
  readonly url: string;
  readonly token: string | undefined;
  /** The config file consulted (whether or not it existed), for hints. */
  readonly configPath: string;
}

/** The API address used when nothing else is configured (`stowage serve` defaults). */
export const DEFAULT_API_URL = 'http://127.0.0.1:8750';

/** The config file the server's first start writes: STOWAGE_CLI_CONFIG, else XDG_CONFIG_HOME or ~/.config. */
export function cliConfigPath(env: Readonly<Record<string, string | undefined>>): string {
  if (env.STOWAGE_CLI_CONFIG) return env.STOWAGE_CLI_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'stowage', 'config.json');
}

function readConfigFile(path: string): { url?: string; token?: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw usageError('VALIDATION_FAILED', `cannot read the CLI config ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw usageError('VALIDATION_FAILED', `the CLI config ${path} is not valid JSON; expected {"url": "...", "token": "..."}`);
  }
  if (typeof raw !== 'object' || raw === null) return {};
  const { url, token } = raw as Record<string, unknown>;
  const nonBlank = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  return compact({ url: nonBlank(url), token: nonBlank(token) });
}

/**
 * Resolves the API URL and token, each from the first source that has it: the `--api`/`--token`
 * flags, then STOWAGE_URL/STOWAGE_TOKEN, then the config file (see cliConfigPath). Throws a usage
 * error for an unreadable config file or a URL that is not http(s).
 */
export function resolveClientConfig(flags: { api?: string | undefined; token?: string | undefined }, env: Readonly<Record<string, string | undefined>>): ClientConfig {
  const configPath = cliConfigPath(env);
  const needFile = !(flags.api ?? env.STOWAGE_URL) || !(flags.token ?? env.STOWAGE_TOKEN);
  const file = needFile ? readConfigFile(configPath) : {};
  const url = flags.api || env.STOWAGE_URL || file.url || DEFAULT_API_URL;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw usageError('VALIDATION_FAILED', `"${url}" is not a URL; expected e.g. ${DEFAULT_API_URL}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw usageError('VALIDATION_FAILED', `the API URL must be http:// or https://, got "${url}"`);
  }
  const token = flags.token || env.STOWAGE_TOKEN || file.token;
  return { url: url.replace(/\/+$/, ''), token: token || undefined, configPath };
}
