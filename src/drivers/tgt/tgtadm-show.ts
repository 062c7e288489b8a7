/** One connection of an iSCSI session (I_T nexus) as `tgtadm --op show --mode target` prints it. */
export interface TgtConnection {
  readonly cid: number;
  readonly address: string;
}

/** One session (I_T nexus): its id (the `--sid` for `--op delete --mode conn`) and initiator. */
export interface TgtSession {
  readonly sid: number;
  readonly initiator: string;
  readonly connections: readonly TgtConnection[];
}

/** One logical unit; LUN 0 is tgt's controller and has no backing path. */
export interface TgtLun {
  readonly lun: number;
  readonly type: string;
  /** Absolute backing file path, or undefined for the controller LUN (`None`). */
  readonly backingPath?: string;
  readonly readonly: boolean;
  readonly thin: boolean;
  /** Size as tgt prints it, rounded to decimal megabytes (not exact; use the backing file). */
  readonly sizeMb: number;
}

/** One target with everything tgtd reports about it. */
export interface TgtTarget {
  readonly tid: number;
  readonly iqn: string;
  readonly state: string;
  readonly sessions: readonly TgtSession[];
  readonly luns: readonly TgtLun[];
  /** Incoming CHAP accounts bound to the target. */
  readonly accounts: readonly string[];
  /** The mutual-CHAP (outgoing) account, if one is bound. */
  readonly outgoingAccount?: string;
  /** Address ACL entries (`-I`): IPv4/IPv6 addresses, CIDRs or `ALL`. */
  readonly aclAddresses: readonly string[];
  /** Initiator-name ACL entries (`-Q`). */
  readonly aclInitiators: readonly string[];
}

type Section = 'none' | 'system' | 'nexus' | 'lun' | 'account' | 'acl';

const SECTION_HEADERS: Readonly<Record<string, Section>> = {
  'System information:': 'system',
  'I_T nexus information:': 'nexus',
  'LUN information:': 'lun',
  'Account information:': 'account',
  'ACL information:': 'acl',
};

interface MutableSession { sid: number; initiator: string; connections: TgtConnection[] }
interface MutableLun { lun: number; type: string; backingPath?: string; readonly: boolean; thin: boolean; sizeMb: number }
interface MutableTarget {
  tid: number;
  iqn: string;
  state: string;
  sessions: MutableSession[];
  luns: MutableLun[];
  accounts: string[];
  outgoingAccount?: string;
  aclAddresses: string[];
  aclInitiators: string[];
}

/** True when an ACL entry is an address rule (`-I`), false when it is an initiator name (`-Q`). */
export function isAddressAclEntry(entry: string): boolean {
  return entry === 'ALL' || /^[0-9.]+(?:\/\d+)?$/.test(entry) || /^\[?[0-9a-fA-F:]+\]?(?:\/\d+)?$/.test(entry);
}

function applyLunField(lun: MutableLun, key: string, value: string): void {
  switch (key) {
    case 'Type': lun.type = value; break;
    case 'Readonly': lun.readonly = value === 'Yes'; break;
    case 'Thin-provisioning': lun.thin = value === 'Yes'; break;
    case 'Backing store path': if (value !== 'None' && value !== '') lun.backingPath = value; break;
    case 'Size': { const m = /^(\d+) MB/.exec(value); if (m?.[1]) lun.sizeMb = Number(m[1]); break; }
    default: break;
  }
}

function parseNexusLine(t: MutableTarget, line: string): void {
  const nexus = /^I_T nexus: (\d+)$/.exec(line);
  if (nexus?.[1]) { t.sessions.push({ sid: Number(nexus[1]), initiator: '', connections: [] }); return; }
  const session = t.sessions.at(-1);
  if (!session) return;
  const init = /^Initiator: (\S+)(?: alias: .*)?$/.exec(line);
  if (init?.[1]) { session.initiator = init[1]; return; }
  const conn = /^Connection: (\d+)$/.exec(line);
  if (conn?.[1]) { session.connections.push({ cid: Number(conn[1]), address: '' }); return; }
  const ip = /^IP Address: (\S+)$/.exec(line);
  const last = session.connections.at(-1);
  if (ip?.[1] && last) session.connections[session.connections.length - 1] = { cid: last.cid, address: ip[1] };
}

function parseLunLine(t: MutableTarget, line: string): void {
  const head = /^LUN: (\d+)$/.exec(line);
  if (head?.[1]) { t.luns.push({ lun: Number(head[1]), type: '', readonly: false, thin: false, sizeMb: 0 }); return; }
  const lun = t.luns.at(-1);
  const kv = /^([^:]+):\s*(.*)$/.exec(line);
  if (lun && kv?.[1] !== undefined && kv[2] !== undefined) applyLunField(lun, kv[1], kv[2]);
}

function parseTargetLine(t: MutableTarget, section: Section, line: string): void {
  switch (section) {
    case 'system': { const m = /^State: (\S+)$/.exec(line); if (m?.[1]) t.state = m[1]; return; }
    case 'nexus': parseNexusLine(t, line); return;
    case 'lun': parseLunLine(t, line); return;
    case 'account': {
      const out = /^(\S+) \(outgoing\)$/.exec(line);
      if (out?.[1]) t.outgoingAccount = out[1];
      else t.accounts.push(line);
      return;
    }
    case 'acl': (isAddressAclEntry(line) ? t.aclAddresses : t.aclInitiators).push(line); return;
    case 'none': return;
  }
}

/**
 * Parses the text of `tgtadm --op show --mode target` (tgt 1.0.x) into targets with their LUNs,
 * ACLs, bound accounts and open sessions. Pure; unknown lines are ignored so newer tgt versions
 * that add fields still parse.
 */
export function parseTgtadmShow(text: string): TgtTarget[] {
  const targets: MutableTarget[] = [];
  let current: MutableTarget | undefined;
  let section: Section = 'none';
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    const head = /^Target (\d+): (\S+)\s*$/.exec(raw);
    if (head?.[1] && head[2]) {
      current = { tid: Number(head[1]), iqn: head[2], state: '', sessions: [], luns: [], accounts: [], aclAddresses: [], aclInitiators: [] };
      targets.push(current);
      section = 'none';
      continue;
    }
    if (!current) continue;
    const line = raw.trim();
    const indent = raw.length - raw.trimStart().length;
    const header = indent === 4 ? SECTION_HEADERS[line] : undefined;
    if (header) { section = header; continue; }
    parseTargetLine(current, section, line);
  }
  return targets;
}

/** Parses `tgtadm --op show --mode account` into the list of account names (`Account list:`). */
export function parseTgtadmAccounts(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && l !== 'Account list:');
}
