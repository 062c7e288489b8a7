import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { compact } from '../core/compact.js';
import type { ApiPin } from '../system/pinned-fetch.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../system/private-files.js';
import { isFingerprint } from '../system/tls-identity.js';
import { CliError, usageError } from './errors.js';

/** Where the CLI talks to: the API's base URL and the bearer token (absent when none is configured). */
export interface ClientConfig {
  readonly url: string;
  readonly token: string | undefined;
  /** The config file consulted (whether or not it existed), for hints. */
  readonly configPath: string;
  /** For an https URL: the API certificate the CLI trusts (from the config file for its URL, or --fingerprint). */
  readonly pin?: ApiPin | undefined;
}

/** What the config file holds: written by the server's first start or by `stowage login`. */
export interface ClientConfigFile {
  readonly url?: string;
  readonly token?: string;
  /** The pinned API certificate of `url` (https only). */
  readonly apiFingerprint?: string;
  readonly apiCertPem?: string;
}

/** The API address used when nothing else is configured (`stowage serve` defaults). */
export const DEFAULT_API_URL = 'http://127.0.0.1:8750';

/** The config file the server's first start writes: STOWAGE_CLI_CONFIG, else XDG_CONFIG_HOME or ~/.config. */
export function cliConfigPath(env: Readonly<Record<string, string | undefined>>): string {
  if (env.STOWAGE_CLI_CONFIG) return env.STOWAGE_CLI_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'stowage', 'config.json');
}

/**
 * Writes the CLI config file 0600 from its first byte: into a new temp file beside it, then renamed
 * over it, so the token is never in a file with looser modes (an existing 0644 file, a half-written
 * one). Directories it creates are 0700; with `privateDir` (the default config directory, which
 * is the CLI's own) an existing one is set to 0700 too. A directory named by STOWAGE_CLI_CONFIG is
 * left as it is: it may be shared (a home directory, /tmp).
 */
export function writeClientConfigFile(path: string, cfg: ClientConfigFile, opts: { privateDir?: boolean } = {}): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (opts.privateDir) chmodSync(dir, PRIVATE_DIR_MODE);
  const temp = join(dir, `.${basename(path)}.${String(process.pid)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    writeFileSync(temp, `${JSON.stringify(cfg, null, 2)}\n`, { mode: PRIVATE_FILE_MODE, flag: 'wx' });
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw new CliError(null, `cannot write the CLI config ${path}: ${(err as Error).message}`, { cause: err });
  }
}

export function readConfigFile(path: string): ClientConfigFile {
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
  const { url, token, apiFingerprint, apiCertPem } = raw as Record<string, unknown>;
  const nonBlank = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  return compact({ url: nonBlank(url), token: nonBlank(token), apiFingerprint: nonBlank(apiFingerprint), apiCertPem: nonBlank(apiCertPem) });
}

/**
 * Resolves the API URL and token, each from the first source that has it: the `--api`/`--token`
 * flags, then STOWAGE_URL/STOWAGE_TOKEN, then the config file (see cliConfigPath). Throws a usage
 * error for an unreadable config file or a URL that is not http(s).
 */
export function resolveClientConfig(flags: { api?: string | undefined; token?: string | undefined; fingerprint?: string | undefined }, env: Readonly<Record<string, string | undefined>>): ClientConfig {
  const configPath = cliConfigPath(env);
  const given = flags.api ?? env.STOWAGE_URL;
  // Read only when it can contribute: a missing URL or token, or the pin of an https URL.
  const needFile = !given || !(flags.token ?? env.STOWAGE_TOKEN) || given.startsWith('https:');
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
  const base = url.replace(/\/+$/, '');
  const fingerprint = flags.fingerprint || env.STOWAGE_FINGERPRINT;
  if (fingerprint && !isFingerprint(fingerprint)) throw usageError('VALIDATION_FAILED', `"${fingerprint}" is not a certificate fingerprint; expected sha256: and 64 lowercase hex digits`);
  // The file's pin belongs to the file's URL: another --api gets no pin from it (it must be pinned anew).
  const filePin = file.apiFingerprint && file.url?.replace(/\/+$/, '') === base ? { fingerprint: file.apiFingerprint, certPem: file.apiCertPem } : undefined;
  const pin = fingerprint ? { fingerprint, certPem: filePin?.fingerprint === fingerprint ? filePin.certPem : undefined } : filePin;
  return { url: base, token: token || undefined, configPath, ...(parsed.protocol === 'https:' && pin ? { pin } : {}) };
}
