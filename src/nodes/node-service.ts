import { X509Certificate } from 'node:crypto';
import { resolveApiCertificate } from '../api/api-certificate.js';
import type { Config } from '../config/config.js';
import { StowageError } from '../core/errors.js';
import { DEFAULT_TENANT_ID, isId, newId } from '../core/ids.js';
import type { PageOf } from '../core/models.js';
import { assertValidName } from '../core/names.js';
import { newEnrollmentToken, parseEnrollmentToken } from '../core/enrollment-token.js';
import type { CreateNodeInput, NodeEnrolled, NodeEnrollment, NodeInfo } from '../core/schemas/node-schema.js';
import { hashToken } from '../core/token-hash.js';
import type { OperationEngine } from '../operations/engine.js';
import type { InlineKind } from '../operations/inline-kinds.js';
import { isUniqueViolation, nowIso } from '../store/json.js';
import type { PageRequest } from '../store/keyset-page.js';
import type { Repositories } from '../store/repositories.js';
import type { NodeRow, NodeUpdate } from '../store/schema.js';
import type { Executor, Store } from '../store/store.js';
import { fingerprintOf } from '../system/tls-identity.js';
import type { ControlIdentities } from './control-identities.js';

/** The port `stowage node run` listens on when an address names none. */
export const DEFAULT_NODE_PORT = 8751;

/** The one answer of every failed enrollment: which check failed is not told (it would help a guesser). */
const ENROLLMENT_REFUSED = 'enrollment refused: the token is unknown, used, expired or for another node; create a new one with `stowage node rekey NODE`';

/**
 * The rules of storage nodes: registration with a one-time enrollment token, enrollment (pinning
 * the node's certificate), drain and resume, re-keying, revocation and deletion. Liveness (syncing →
 * ready → unreachable) belongs to the heartbeat monitor, not here.
 *
 * Re-keying keeps the current pin valid: the node stays callable with its old key until it enrolls
 * again with the new token, and only then is the old pin replaced (a rekey that is never used breaks
 * nothing). To cut a node off at once, revoke it.
 */
export class NodeService {
  constructor(
    private readonly store: Store,
    private readonly repos: Repositories,
    private readonly engine: OperationEngine,
    private readonly identities: ControlIdentities,
    private readonly config: Config,
    /** The node's calls in flight at its last heartbeat (the node monitor's), null when unknown. */
    private readonly inFlightOf: (id: string) => number | null = () => null,
  ) {}

  /** Finds a node by id or name, or throws NODE_NOT_FOUND. */
  async resolve(ref: string, db: Executor = this.store.db): Promise<NodeRow> {
    const row = isId('node', ref) ? await this.repos.nodes.findById(db, ref) : await this.repos.nodes.findByName(db, ref);
    if (!row) throw new StowageError('NODE_NOT_FOUND', `node "${ref}" does not exist; see \`stowage node list\``, { node: ref });
    return row;
  }

  async get(ref: string): Promise<NodeInfo> {
    const row = await this.resolve(ref);
    const names = await this.repos.nodes.backendNames(this.store.db, [row.id]);
    return toNodeInfo(row, names.get(row.id) ?? [], this.inFlightOf(row.id));
  }

  /** One page of nodes by name, each with the names of its backends. */
  async list(page: PageRequest): Promise<PageOf<NodeInfo>> {
    const { rows, nextCursor } = await this.repos.nodes.page(this.store.db, page);
    const names = await this.repos.nodes.backendNames(this.store.db, rows.map((r) => r.id));
    return { items: rows.map((r) => toNodeInfo(r, names.get(r.id) ?? [], this.inFlightOf(r.id))), nextCursor };
  }

  /**
   * Registers a node (state `enrolling`) and answers its one-time enrollment token, which the store
   * keeps only hashed. A retry with the Idempotency-Key of a create that committed answers that node
   * with a fresh token (the first answer, which may never have arrived, is void: tokens are shown once).
   */
  async create(input: CreateNodeInput, actor: string, idempotencyKey?: string): Promise<NodeEnrollment> {
    assertValidName(input.name, 'node name');
    const address = normalizeNodeAddress(input.address);
    const ttlMs = input.enrollTtlSeconds !== undefined ? input.enrollTtlSeconds * 1000 : this.config.nodeEnrollTtlMs;
    const first = await this.createdBy(input.name, idempotencyKey);
    if (first) return this.issueToken(first, ttlMs, actor, 'node.rekey');
    const { token, hash, expiresAt } = await this.newToken(ttlMs);
    const at = nowIso();
    const row: NodeRow = {
      id: newId('node'), name: input.name, address, state: 'enrolling', state_reason: 'waiting for `stowage node run --enroll`', admin_state: 'active',
      version: null, boot_id: null, epoch: 0, cert_pem: null, cert_fingerprint: null, cert_expires_at: null,
      enroll_token_hash: hash, enroll_expires_at: expiresAt, last_heartbeat_at: null, clock_skew_ms: null, unreachable_since: null,
      created_at: at, updated_at: at,
    };
    await this.store.transaction(async (trx) => {
      try {
        await this.repos.nodes.insert(trx, row);
      } catch (err) {
        if (isUniqueViolation(err)) throw new StowageError('NAME_TAKEN', `a node named "${input.name}" already exists`, { name: input.name });
        throw err;
      }
      await this.event(trx, row, 'create', null, row.state, `node ${row.name} registered at ${address}; enrollment open until ${expiresAt}`);
      await this.engine.record(trx, { kind: 'node.create', tenantId: DEFAULT_TENANT_ID, targetType: 'node', targetId: row.id, input: { name: row.name, address }, actor, idempotencyKey: idempotencyKey ?? null }, {});
    });
    await this.engine.recorded('node.create');
    return { node: toNodeInfo(row, [], null), enrollToken: token, enrollExpiresAt: expiresAt };
  }

  /** The node an earlier node.create with this key created, if it still exists and has this name. */
  private async createdBy(name: string, key: string | undefined): Promise<NodeRow | undefined> {
    if (key === undefined) return undefined;
    const op = await this.repos.operations.findByIdempotencyKey(this.store.db, DEFAULT_TENANT_ID, key);
    if (op?.kind !== 'node.create' || op.target_type !== 'node') return undefined;
    const row = await this.repos.nodes.findById(this.store.db, op.target_id);
    if (row && row.name !== name) throw new StowageError('IDEMPOTENCY_CONFLICT', `Idempotency-Key "${key}" was already used to create node ${row.name}; use a new key for a new request`, { key });
    return row;
  }

  /**
   * Enrolls node `name` with its one-time `token` and its self-signed certificate: pins the
   * certificate, clears the token in the same statement (a replayed or concurrent use fails), and
   * answers the control plane's `node-client` certificate for the node to pin. Every refusal is the
   * same ENROLLMENT_INVALID and changes nothing.
   */
  async enroll(name: string, token: string, certPem: string): Promise<NodeEnrolled> {
    let secret: string;
    try {
      const parsed = parseEnrollmentToken(token);
      if (parsed.kind !== 'node') throw new Error('not a node token');
      secret = parsed.secret;
    } catch {
      throw new StowageError('ENROLLMENT_INVALID', ENROLLMENT_REFUSED, {});
    }
    const cert = parseNodeCertificate(certPem);
    const row = await this.repos.nodes.findByName(this.store.db, name);
    if (!row) throw new StowageError('ENROLLMENT_INVALID', ENROLLMENT_REFUSED, {});
    // Made by create already; fetched before the pin is stored so a success always has its answer.
    const client = await this.identities.get('node-client');
    const won = await this.store.transaction(async (trx) => {
      const ok = await this.repos.nodes.consumeEnrollToken(trx, row.id, hashToken(secret), nowIso(), {
        cert_pem: cert.pem, cert_fingerprint: cert.fingerprint, cert_expires_at: cert.expiresAt,
        state: 'syncing', state_reason: 'enrolled; waiting for its first heartbeat and sync', unreachable_since: null,
      });
      if (!ok) return false;
      const replaced = row.cert_fingerprint ? ` (replacing the pin ${row.cert_fingerprint})` : '';
      await this.event(trx, row, 'enroll', row.state, 'syncing', `node ${row.name} enrolled with key ${cert.fingerprint}${replaced}`);
      return true;
    });
    if (!won) throw new StowageError('ENROLLMENT_INVALID', ENROLLMENT_REFUSED, {});
    return { node: row.name, controlPlaneCertPem: client.certPem };
  }

  /** Stops placement on the node (its backends keep serving what they hold). */
  async drain(ref: string, actor: string): Promise<NodeInfo> {
    return this.change(ref, actor, 'node.drain', 'drain', () => ({ admin_state: 'draining', state: 'draining', state_reason: 'drained by an operator: no new placements' }));
  }

  /** Undoes a drain: the node syncs again (enrolled) or keeps waiting for enrollment. */
  async resume(ref: string, actor: string): Promise<NodeInfo> {
    return this.change(ref, actor, 'node.resume', 'resume', (row) => (row.cert_pem
      ? { admin_state: 'active', state: 'syncing', state_reason: 'resumed by an operator; waiting for a sync' }
      : { admin_state: 'active', state: 'enrolling', state_reason: 'resumed; still waiting for `stowage node run --enroll`' }));
  }

  /**
   * Clears the node's pin and any outstanding token: the control plane refuses it and no longer
   * calls it, until it enrolls again with a token from `rekey`.
   */
  async revoke(ref: string, actor: string): Promise<NodeInfo> {
    return this.change(ref, actor, 'node.revoke', 'revoke', () => ({
      cert_pem: null, cert_fingerprint: null, cert_expires_at: null, enroll_token_hash: null, enroll_expires_at: null,
      state: 'enrolling', state_reason: 'key revoked by an operator; re-enroll with a token from `stowage node rekey`',
    }));
  }

  /** A new one-time enrollment token; the current pin stays valid until the node enrolls with it. */
  async rekey(ref: string, actor: string, ttlSeconds?: number): Promise<NodeEnrollment> {
    const row = await this.resolve(ref);
    return this.issueToken(row, ttlSeconds !== undefined ? ttlSeconds * 1000 : this.config.nodeEnrollTtlMs, actor, 'node.rekey');
  }

  /** Refuses (NODE_IN_USE, naming them) while backends run on the node; otherwise removes it. */
  async delete(ref: string, actor: string): Promise<void> {
    const row = await this.resolve(ref);
    await this.store.transaction(async (trx) => {
      const names = (await this.repos.nodes.backendNames(trx, [row.id])).get(row.id) ?? [];
      if (names.length > 0) {
        throw new StowageError('NODE_IN_USE', `node ${row.name} still runs backend${names.length === 1 ? '' : 's'} ${names.join(', ')}; delete them first (stowage backend delete NAME)`, { node: row.name, backends: names });
      }
      await this.repos.nodes.delete(trx, row.id);
      await this.event(trx, row, 'delete', row.state, 'deleted', `node ${row.name} deleted`);
      await this.engine.record(trx, { kind: 'node.delete', tenantId: DEFAULT_TENANT_ID, targetType: 'node', targetId: row.id, input: {}, actor }, {});
    });
    await this.engine.recorded('node.delete');
  }

  private async change(ref: string, actor: string, kind: InlineKind, action: string, patchOf: (row: NodeRow) => NodeUpdate): Promise<NodeInfo> {
    const row = await this.resolve(ref);
    const patch = patchOf(row);
    await this.store.transaction(async (trx) => {
      await this.repos.nodes.update(trx, row.id, patch);
      const to = patch.state ?? row.state;
      await this.event(trx, row, action, row.state, to, `node ${row.name} ${action === 'drain' ? 'drained' : `${action}d`}`);
      await this.engine.record(trx, { kind, tenantId: DEFAULT_TENANT_ID, targetType: 'node', targetId: row.id, input: {}, actor }, {});
    });
    await this.engine.recorded(kind);
    return this.get(row.id);
  }

  private async issueToken(row: NodeRow, ttlMs: number, actor: string, kind: 'node.rekey'): Promise<NodeEnrollment> {
    const { token, hash, expiresAt } = await this.newToken(ttlMs);
    await this.store.transaction(async (trx) => {
      await this.repos.nodes.update(trx, row.id, { enroll_token_hash: hash, enroll_expires_at: expiresAt });
      const keep = row.cert_fingerprint ? `; its key ${row.cert_fingerprint} stays pinned until it enrolls with the new token` : '';
      await this.event(trx, row, 'rekey', row.state, row.state, `node ${row.name}: new enrollment token, valid until ${expiresAt}${keep}`);
      await this.engine.record(trx, { kind, tenantId: DEFAULT_TENANT_ID, targetType: 'node', targetId: row.id, input: {}, actor }, {});
    });
    await this.engine.recorded(kind);
    return { node: await this.get(row.id), enrollToken: token, enrollExpiresAt: expiresAt };
  }

  private async newToken(ttlMs: number): Promise<{ token: string; hash: string; expiresAt: string }> {
    const api = await resolveApiCertificate(this.config, this.identities);
    // The key the node will pin exists before any token does: enrolling then creates nothing but the pin.
    await this.identities.get('node-client');
    const { token, parsed } = newEnrollmentToken('node', api?.fingerprint ?? null);
    return { token, hash: hashToken(parsed.secret), expiresAt: new Date(Date.now() + ttlMs).toISOString() };
  }

  private async event(trx: Executor, row: NodeRow, action: string, from: string | null, to: string, message: string): Promise<void> {
    await this.repos.events.append(trx, { tenantId: DEFAULT_TENANT_ID, actor: 'system', resourceType: 'node', resourceId: row.id, resourceName: row.name, action, from, to, message });
  }
}

/** `host:port` with the default node port added to a bare host (`[v6]:port` for an IPv6 address). */
export function normalizeNodeAddress(address: string): string {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(address);
  let host: string;
  let port = DEFAULT_NODE_PORT;
  if (m) {
    host = m[1] ? `[${m[1]}]` : m[2] ?? '';
    port = Number(m[3]);
  } else if (/^[A-Za-z0-9.-]+$/.test(address)) {
    host = address;
  } else if (/^\[?[0-9A-Fa-f:.]+\]?$/.test(address) && address.includes(':')) {
    host = `[${address.replace(/^\[|\]$/g, '')}]`;
  } else {
    throw new StowageError('VALIDATION_FAILED', `node address "${address}" is not host, host:port or [ipv6]:port`, { address });
  }
  if (!host || port < 1 || port > 65535) throw new StowageError('VALIDATION_FAILED', `node address "${address}" has no valid host and port (1-65535)`, { address });
  return `${host}:${port}`;
}

/**
 * A node's certificate as enrollment pins it: exactly one PEM certificate and nothing else (no
 * private key, no chain), parsed as X.509 and still valid. Anything else is ENROLLMENT_INVALID.
 */
export function parseNodeCertificate(certPem: string): { pem: string; fingerprint: string; expiresAt: string } {
  const blocks = certPem.match(/-----BEGIN [A-Z0-9 ]+-----/g) ?? [];
  if (blocks.length !== 1 || blocks[0] !== '-----BEGIN CERTIFICATE-----') {
    throw new StowageError('ENROLLMENT_INVALID', 'the node must send exactly one PEM certificate (and never its private key)', {});
  }
  let x: X509Certificate;
  try {
    x = new X509Certificate(certPem);
  } catch {
    throw new StowageError('ENROLLMENT_INVALID', 'the node\'s certificate does not parse as X.509', {});
  }
  const expiresAt = new Date(x.validTo);
  if (!(expiresAt.getTime() > Date.now())) throw new StowageError('ENROLLMENT_INVALID', 'the node\'s certificate has expired', {});
  return { pem: x.toString(), fingerprint: fingerprintOf(x.raw), expiresAt: expiresAt.toISOString() };
}

/** A node row as the API shows it (never its token hash). */
export function toNodeInfo(r: NodeRow, backends: readonly string[], inFlight: number | null): NodeInfo {
  return {
    id: r.id, name: r.name, address: r.address, state: r.state, stateReason: r.state_reason, adminState: r.admin_state,
    version: r.version, epoch: r.epoch, lastHeartbeatAt: r.last_heartbeat_at, clockSkewMs: r.clock_skew_ms,
    unreachableSince: r.unreachable_since, keyFingerprint: r.cert_fingerprint, keyExpiresAt: r.cert_expires_at,
    enrollmentExpiresAt: r.enroll_token_hash ? r.enroll_expires_at : null, backends: [...backends], inFlight,
    createdAt: r.created_at, updatedAt: r.updated_at,
  };
}
