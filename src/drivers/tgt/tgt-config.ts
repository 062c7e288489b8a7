import { isIP } from 'node:net';
import { StowageError } from '../../core/errors.js';

/** Default target IQN prefix; a volume's IQN is `<prefix>:<volume-id>`. */
export const DEFAULT_IQN_PREFIX = 'iqn.2026-11.io.stowage';

/** Default iSCSI port when the URI has none. */
export const DEFAULT_ISCSI_PORT = 3260;

/** A tgt backend's compiled configuration. */
export interface TgtConfig {
  /** Portal initiators connect to, `host:port`. */
  readonly portal: string;
  /** tgtd management channel number (`tgtadm -C <n>`). */
  readonly controlPort: number;
  readonly iqnPrefix: string;
  /** URI of the backing store that holds the LUN files (`dir:///…` or `btrfs:///…`). */
  readonly backingUri: string;
  /** Options for the backing driver (`backing.<key>=<value>` options with the prefix removed). */
  readonly backingOptions: Readonly<Record<string, string>>;
}

/** An IQN prefix: `iqn.YYYY-MM.reversed.domain` optionally followed by `:` and more name parts. */
export const IQN_PREFIX_RE = /^iqn\.\d{4}-\d{2}\.[a-z0-9][a-z0-9.-]*(?::[a-z0-9][a-z0-9.:-]*)?$/;

/** An initiator name tgt can bind with `-Q` (iqn., eui. or naa. form, no whitespace). */
export const INITIATOR_NAME_RE = /^(?:iqn\.\d{4}-\d{2}\.[A-Za-z0-9][A-Za-z0-9.:_-]*|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16,32})$/;

function bad(uri: URL, why: string): StowageError {
  return new StowageError('INVALID_DRIVER_URI', `tgt driver URI "${uri.href}" ${why}; expected tgt://<portal-host>:<port>?backing=<dir-or-btrfs-uri>&control=<n>[&iqnPrefix=iqn.…]`, { uri: uri.href });
}

/**
 * Parses `tgt://<portal-host>:<port>?backing=<uri>&control=<n>&iqnPrefix=<prefix>`. Query values
 * may also come as options; options win. Throws INVALID_DRIVER_URI.
 */
export function parseTgtUri(uri: URL, options: Readonly<Record<string, string>>): TgtConfig {
  if (uri.protocol !== 'tgt:') throw bad(uri, 'has the wrong scheme');
  const host = uri.hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(host) === 0) throw bad(uri, 'must name the portal by IP address');
  const port = uri.port === '' ? DEFAULT_ISCSI_PORT : Number(uri.port);
  if (uri.pathname !== '' && uri.pathname !== '/') throw bad(uri, 'must not have a path');
  const params = new Map<string, string>(uri.searchParams);
  for (const [k, v] of Object.entries(options)) params.set(k, v);
  const known = new Set(['backing', 'control', 'iqnPrefix']);
  for (const k of params.keys()) {
    if (!known.has(k) && !k.startsWith('backing.')) throw bad(uri, `has an unknown option "${k}"`);
  }
  const backingUri = params.get('backing');
  if (backingUri === undefined || backingUri === '') throw bad(uri, 'needs backing=<dir:///… or btrfs:///…>');
  const control = params.get('control');
  if (control === undefined || !/^\d{1,5}$/.test(control) || Number(control) > 65535) throw bad(uri, 'needs control=<tgtd control port 0-65535>');
  const iqnPrefix = params.get('iqnPrefix') ?? DEFAULT_IQN_PREFIX;
  if (!IQN_PREFIX_RE.test(iqnPrefix) || iqnPrefix.length > 160) throw bad(uri, `has an invalid iqnPrefix "${iqnPrefix}"`);
  const backingOptions: Record<string, string> = {};
  for (const [k, v] of params) if (k.startsWith('backing.')) backingOptions[k.slice('backing.'.length)] = v;
  return {
    portal: `${isIP(host) === 6 ? `[${host}]` : host}:${String(port)}`,
    controlPort: Number(control),
    iqnPrefix,
    backingUri,
    backingOptions,
  };
}
