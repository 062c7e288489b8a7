import type { CreateNodeInput, NodeEnrollment, NodeInfo } from '../core/schemas/node-schema.js';
import type { ConnectionInfoModel, Grant, GrantAnswerT, GrantRequest, RevokeAnswerT } from '../core/schemas/access-schema.js';
import type { Attachment, AttachmentListFilter, AttachmentWithOperationT, AttachBodyT } from '../core/schemas/attachment-schema.js';
import type { Migration, MigrationKeyT, MigrationWithOperationT } from '../core/schemas/migration-schema.js';
import type { Backend, BackendWithOperationT, CreateBackendInput, UpdateBackendInput } from '../core/schemas/backend-schema.js';
import type { CreateClassInput, StorageClass, UpdateClassInput } from '../core/schemas/class-schema.js';
import type { QuotaReport, SetQuotaInput } from '../core/schemas/quota-schema.js';
import type { RetentionReport } from '../core/schemas/retention-schema.js';
import type { PageOf } from '../core/models.js';
import type { EventListFilter, StowageEvent } from '../core/schemas/event-schema.js';
import type { CreateHostInput, Host, UpdateHostInput } from '../core/schemas/host-schema.js';
import type { Operation, OperationListFilter } from '../core/schemas/operation-schema.js';
import type { DryRun } from '../core/schemas/placement-schema.js';
import type { Snapshot, SnapshotListFilter, SnapshotWithOperationT } from '../core/schemas/snapshot-schema.js';
import type {
  CreateTenantInput, CreateTokenInput, CreateUserInput, CreatedToken, Tenant, Token, UpdateTenantInput, UpdateUserInput, User, Whoami,
} from '../core/schemas/tenant-schema.js';
import type { CreateVolumeRequest, Volume, VolumeListFilter, VolumeWithOperationT } from '../core/schemas/volume-schema.js';
import type { ClientConfig } from './client-config.js';
import { ApiError, CliError } from './errors.js';
import { pinnedRequest, plainRequest, probeCertificate, type PlainRequest } from '../system/pinned-fetch.js';
import { PinMismatchError } from '../system/tls-identity.js';

/*
 * Every request and answer type below is the Static<> of the schema the route validates and
 * serializes with, so a wire shape is written once (in src/<resource>/<resource>-schema.ts) and the
 * CLI cannot drift from the API.
 */
export type { VolumeWithOperationT };
/** `POST /v1/placements/dry-run` answer: every backend's verdict and the winner. */
export type DryRunResponseT = DryRun;

/** `POST /v1/hosts/{ref}/enroll-token` answer. */
export interface EnrollmentAnswer {
  readonly host: string;
  readonly token: string;
  readonly expiresAt: string;
  readonly apiFingerprint: string | null;
}

type Query = Readonly<Record<string, string | number | boolean | undefined>>;
/** Filters of a list: optional fields may also be passed as undefined (commander leaves absent flags undefined). */
type Filter<T> = { [K in keyof T]?: T[K] | undefined };
type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Longest a single request may take (waits are done with many short requests), in ms. */
const REQUEST_TIMEOUT_MS = 120_000;
/** Page size used when a list command fetches every page. */
const PAGE_LIMIT = 500;

const seg = (ref: string): string => encodeURIComponent(ref);

/** The `stowage login` line that pins `fingerprint` for `url`. */
export function loginHint(url: string, fingerprint: string): string {
  return `stowage login --api ${url} --token-file FILE --fingerprint ${fingerprint}`;
}

/**
 * The transport of a config: node:http for http:// (see PlainRequest: no fetch classes to load, and
 * the process exits the moment its command is done); for https:// the same, pinned to the
 * configured certificate. Without a pin it refuses before sending anything: it only fetches the
 * certificate (a bare handshake, no request, no token) to show its fingerprint.
 */
export function transportFor(config: ClientConfig): PlainRequest {
  if (config.url.startsWith('http:')) return plainRequest();
  if (!config.url.startsWith('https:')) return fetch;
  const pin = config.pin;
  // One CLI process: its submit and the polls that follow share one pinned connection.
  if (pin) return pinnedRequest(pin, { keepAlive: true });
  return async () => {
    let seen: string;
    try {
      seen = (await probeCertificate(config.url)).fingerprint;
    } catch (err) {
      throw new TypeError('fetch failed', { cause: err });
    }
    throw new CliError('TLS_UNPINNED', `the API at ${config.url} shows certificate ${seen}, which this CLI has not pinned; nothing was sent`, {
      hints: [
        `compare it with the fingerprint \`stowage serve\` printed on its first start, then: ${loginHint(config.url, seen)}`,
        'or pass --fingerprint for this one command',
      ],
    });
  };
}

/**
 * A small typed client of the Stowage REST API over node:http (pinned for https). Every non-2xx answer becomes an
 * ApiError carrying the API's `{ code, message, details }`; an unreachable server a CliError saying so.
 */
export class StowageClient {
  private readonly fetchFn: PlainRequest;

  constructor(private readonly config: ClientConfig, fetchFn?: PlainRequest) {
    this.fetchFn = fetchFn ?? transportFor(config);
  }

  /** The API base URL, e.g. http://127.0.0.1:8750. */
  get url(): string {
    return this.config.url;
  }

  /** Sends one request and returns the parsed JSON body (undefined for 204). */
  async request<T>(method: Method, path: string, opts: { query?: Query; body?: unknown; signal?: AbortSignal | undefined } = {}): Promise<T> {
    const url = new URL(`${this.config.url}/v1${path}`);
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'stowage-cli' };
    if (this.config.token) headers.authorization = `Bearer ${this.config.token}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    let res: Awaited<ReturnType<PlainRequest>>;
    try {
      res = await this.fetchFn(url, {
        method, headers,
        body: opts.body === undefined ? null : JSON.stringify(opts.body),
        signal: opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout,
      });
    } catch (err) {
      throw this.transportError(err);
    }
    const text = await res.text();
    if (!res.ok) throw this.apiError(res.status, text);
    if (res.status === 204 || text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError('INTERNAL', `the API at ${this.config.url} answered ${method} ${path} with something that is not JSON`);
    }
  }

  private transportError(err: unknown): CliError {
    if (err instanceof CliError) return err;
    const mismatch = err instanceof PinMismatchError ? err : err instanceof Error && err.cause instanceof PinMismatchError ? err.cause : undefined;
    if (mismatch) {
      return new CliError('TLS_PIN_MISMATCH', `the API at ${this.config.url} shows certificate ${mismatch.seen}, not the pinned ${mismatch.expected}; nothing was sent (no token)`, {
        cause: err,
        hints: [
          'someone may be in between, or the server got a new certificate: ask its operator for the fingerprint it prints',
          `if the new one is right: ${loginHint(this.config.url, mismatch.seen)}`,
        ],
      });
    }
    if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
      return new CliError('TIMEOUT', `the API at ${this.config.url} did not answer in time`, { cause: err });
    }
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : undefined;
    const why = cause ? ((cause as NodeJS.ErrnoException).code ?? cause.message) : err instanceof Error ? err.message : String(err);
    return new CliError(null, `cannot reach the Stowage API at ${this.config.url}: is \`npm start\` running? (${why})`, {
      cause: err,
      hints: ['set the address with --api URL, STOWAGE_URL, or the "url" of the CLI config file'],
    });
  }

  private apiError(status: number, text: string): ApiError {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const b = typeof body === 'object' && body !== null ? body as Record<string, unknown> : {};
    const code = typeof b.code === 'string' ? b.code : `HTTP_${status}`;
    const message = typeof b.message === 'string' ? b.message : `the API answered HTTP ${status}`;
    const details = typeof b.details === 'object' && b.details !== null ? b.details as Record<string, unknown> : {};
    const hints: string[] = [];
    if (code === 'UNAUTHORIZED') {
      hints.push(this.config.token
        ? `the token in use was rejected; check --token, STOWAGE_TOKEN or ${this.config.configPath}`
        : `no API token is configured: pass --token, set STOWAGE_TOKEN, or use the config file the server wrote on first start (looked for ${this.config.configPath})`);
    }
    return new ApiError(status, code, message, details, hints);
  }

  private async allPages<T>(path: string, query: Query, signal?: AbortSignal): Promise<T[]> {
    const out: T[] = [];
    let cursor: string | undefined;
    do {
      const page: PageOf<T> = await this.request<PageOf<T>>('GET', path, { query: { ...query, limit: PAGE_LIMIT, cursor }, signal });
      out.push(...page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    return out;
  }

  /** Every backend with state and capacity. */
  listBackends(signal?: AbortSignal): Promise<Backend[]> {
    return this.allPages<Backend>('/backends', {}, signal);
  }

  /** One backend by name or id. */
  getBackend(ref: string): Promise<Backend> {
    return this.request('GET', `/backends/${seg(ref)}`);
  }

  /** Registers a backend (probed at once by the server). */
  createBackend(body: CreateBackendInput): Promise<BackendWithOperationT> {
    return this.request('POST', '/backends', { body });
  }

  /** Changes a backend's placement settings. */
  updateBackend(ref: string, body: UpdateBackendInput): Promise<Backend> {
    return this.request('PATCH', `/backends/${seg(ref)}`, { body });
  }

  /** Enables, disables or re-probes a backend. */
  backendAction(ref: string, verb: 'enable' | 'disable' | 'refresh'): Promise<Backend> {
    return this.request('POST', `/backends/${seg(ref)}/${verb}`);
  }

  /** Deletes a backend that holds no volumes. */
  async deleteBackend(ref: string): Promise<void> {
    await this.request<undefined>('DELETE', `/backends/${seg(ref)}`);
  }

  /** Every storage node (all pages). */
  listNodes(signal?: AbortSignal): Promise<NodeInfo[]> {
    return this.allPages<NodeInfo>('/nodes', {}, signal);
  }

  /** One storage node by name or id. */
  getNode(ref: string): Promise<NodeInfo> {
    return this.request('GET', `/nodes/${seg(ref)}`);
  }

  /** Registers a storage node; the answer carries its one-time enrollment token. */
  createNode(body: CreateNodeInput): Promise<NodeEnrollment> {
    return this.request('POST', '/nodes', { body });
  }

  /** A new one-time enrollment token for a node. */
  rekeyNode(ref: string, body: { enrollTtlSeconds?: number } = {}): Promise<NodeEnrollment> {
    return this.request('POST', `/nodes/${seg(ref)}/rekey`, { body });
  }

  /** Drains, resumes or revokes a node. */
  nodeAction(ref: string, verb: 'drain' | 'resume' | 'revoke'): Promise<NodeInfo> {
    return this.request('POST', `/nodes/${seg(ref)}/${verb}`);
  }

  /** Deletes a node no backend runs on. */
  async deleteNode(ref: string): Promise<void> {
    await this.request<undefined>('DELETE', `/nodes/${seg(ref)}`);
  }

  /** Every storage class (all pages). */
  listClasses(): Promise<StorageClass[]> {
    return this.allPages<StorageClass>('/classes', {});
  }

  /** One storage class by name or id. */
  getClass(ref: string): Promise<StorageClass> {
    return this.request('GET', `/classes/${seg(ref)}`);
  }

  /** Creates a storage class. */
  createClass(body: CreateClassInput): Promise<StorageClass> {
    return this.request('POST', '/classes', { body });
  }

  /** Changes a storage class (later placements only). */
  updateClass(ref: string, body: UpdateClassInput): Promise<StorageClass> {
    return this.request('PATCH', `/classes/${seg(ref)}`, { body });
  }

  /** Deletes a storage class no volume uses. */
  async deleteClass(ref: string): Promise<void> {
    await this.request<undefined>('DELETE', `/classes/${seg(ref)}`);
  }

  /** Quotas with usage: of a tenant (admins), or of the caller's own tenant. */
  showQuota(tenant?: string): Promise<QuotaReport> {
    return tenant === undefined ? this.request('GET', '/quotas') : this.request('GET', `/tenants/${seg(tenant)}/quota`);
  }

  /** Sets limits of a tenant or of one class within it (admins). */
  setQuota(tenant: string, body: SetQuotaInput): Promise<QuotaReport> {
    return this.request('PUT', `/tenants/${seg(tenant)}/quota`, { body });
  }

  /** The retention policy, what is kept and the last sweep (admins). */
  showRetention(): Promise<RetentionReport> {
    return this.request('GET', '/system/retention');
  }

  /** Runs one retention sweep now and answers the report (admins). */
  sweepRetention(): Promise<RetentionReport> {
    return this.request('POST', '/system/retention/sweep');
  }

  /** Every volume (all pages), optionally filtered by backend and state. */
  listVolumes(filter: Filter<VolumeListFilter> = {}): Promise<Volume[]> {
    return this.allPages<Volume>('/volumes', filter);
  }

  /** One volume by name or id, with its placement decision. */
  getVolume(ref: string): Promise<Volume> {
    return this.request('GET', `/volumes/${seg(ref)}`);
  }

  /** Submits a volume create; the returned operation provisions it. */
  createVolume(body: CreateVolumeRequest): Promise<VolumeWithOperationT> {
    return this.request('POST', '/volumes', { body });
  }

  /** Every backend's verdict for a volume request, changing nothing. */
  dryRun(body: CreateVolumeRequest): Promise<DryRunResponseT> {
    return this.request('POST', '/placements/dry-run', { body });
  }

  /** Submits growing a volume to `sizeBytes`. */
  resizeVolume(ref: string, sizeBytes: number): Promise<VolumeWithOperationT> {
    return this.request('POST', `/volumes/${seg(ref)}/resize`, { body: { sizeBytes } });
  }

  /** Submits deleting a volume and its data. */
  deleteVolume(ref: string): Promise<VolumeWithOperationT> {
    return this.request('DELETE', `/volumes/${seg(ref)}`);
  }

  /** Operations, newest first (one page of at most `limit`). */
  async listOperations(filter: Filter<OperationListFilter> & { limit: number }): Promise<Operation[]> {
    return (await this.request<PageOf<Operation>>('GET', '/operations', { query: filter })).items;
  }

  /** One operation; with `waitMs` > 0 the server answers once it finished or that time passed. */
  getOperation(id: string, waitMs = 0, signal?: AbortSignal): Promise<Operation> {
    return this.request('GET', `/operations/${seg(id)}`, { query: { waitMs: waitMs > 0 ? waitMs : undefined }, signal });
  }

  /** A page of events: newest first, or oldest first after a sequence number (`after`). */
  listEvents(filter: Filter<EventListFilter> & { limit: number }, signal?: AbortSignal): Promise<PageOf<StowageEvent>> {
    return this.request('GET', '/events', { query: filter, signal });
  }

  /** Every registered host. */
  listHosts(): Promise<Host[]> {
    return this.allPages<Host>('/hosts', {});
  }

  /** One host by name or id. */
  getHost(ref: string): Promise<Host> {
    return this.request('GET', `/hosts/${seg(ref)}`);
  }

  /** Registers a host. */
  createHost(body: CreateHostInput): Promise<Host> {
    return this.request('POST', '/hosts', { body });
  }

  /** A new one-time enrollment token for the host's agent. */
  enrollHost(ref: string, ttlMs?: number): Promise<EnrollmentAnswer> {
    return this.request('POST', `/hosts/${seg(ref)}/enroll-token`, { body: ttlMs === undefined ? {} : { ttlMs } });
  }

  /** Changes a host's initiator name, addresses or zone. */
  updateHost(ref: string, body: UpdateHostInput): Promise<Host> {
    return this.request('PATCH', `/hosts/${seg(ref)}`, { body });
  }

  /** Deletes a host that has no access left. */
  async deleteHost(ref: string): Promise<void> {
    await this.request<undefined>('DELETE', `/hosts/${seg(ref)}`);
  }

  /** Submits fencing a host: revoke all its access, drop its sessions, mark it fenced. */
  fenceHost(ref: string): Promise<Operation> {
    return this.request('POST', `/hosts/${seg(ref)}/fence`);
  }

  /** Returns a fenced host to service. */
  async unfenceHost(ref: string): Promise<void> {
    await this.request<undefined>('POST', `/hosts/${seg(ref)}/unfence`);
  }

  /** Submits attaching every volume of a fenced host to the same-named instances on `to`; one operation per attachment. */
  async evacuateHost(ref: string, to: string): Promise<Operation[]> {
    return (await this.request<{ items: Operation[] }>('POST', `/hosts/${seg(ref)}/evacuate`, { body: { to } })).items;
  }

  /** Submits granting a host access to a volume. */
  grantAccess(volume: string, body: GrantRequest): Promise<GrantAnswerT> {
    return this.request('POST', `/volumes/${seg(volume)}/grants`, { body });
  }

  /** Live grants of a volume (no secrets). */
  async listGrants(volume: string): Promise<Grant[]> {
    return (await this.request<PageOf<Grant>>('GET', `/volumes/${seg(volume)}/grants`)).items;
  }

  /** Connection info of an active grant, CHAP secret included (the server records that it was read). */
  getConnection(volume: string, host: string): Promise<ConnectionInfoModel> {
    return this.request('GET', `/volumes/${seg(volume)}/grants/${seg(host)}/connection`);
  }

  /** Submits revoking a host's access to a volume. */
  revokeAccess(volume: string, host: string): Promise<RevokeAnswerT> {
    return this.request('DELETE', `/volumes/${seg(volume)}/grants/${seg(host)}`);
  }

  /** Submits a snapshot of a volume. */
  createSnapshot(volume: string, name: string): Promise<SnapshotWithOperationT> {
    return this.request('POST', '/snapshots', { body: { volume, name } });
  }

  /** Snapshots, optionally of one volume. */
  listSnapshots(filter: Filter<SnapshotListFilter> = {}): Promise<Snapshot[]> {
    return this.allPages<Snapshot>('/snapshots', filter);
  }

  /** One snapshot by name or id. */
  getSnapshot(ref: string): Promise<Snapshot> {
    return this.request('GET', `/snapshots/${seg(ref)}`);
  }

  /** Submits deleting a snapshot. */
  deleteSnapshot(ref: string): Promise<SnapshotWithOperationT> {
    return this.request('DELETE', `/snapshots/${seg(ref)}`);
  }

  /** Submits reverting a volume to one of its snapshots. */
  revertVolume(volume: string, snapshot: string): Promise<VolumeWithOperationT> {
    return this.request('POST', `/volumes/${seg(volume)}/revert`, { body: { snapshot } });
  }

  /** Submits attaching a volume to an instance on a host. */
  attachVolume(volume: string, body: AttachBodyT): Promise<AttachmentWithOperationT> {
    return this.request('POST', `/volumes/${seg(volume)}/attachments`, { body });
  }

  /** Submits detaching a volume everywhere, or from one host. */
  async detachVolume(volume: string, host?: string): Promise<AttachmentWithOperationT[]> {
    return (await this.request<{ items: AttachmentWithOperationT[] }>('POST', `/volumes/${seg(volume)}/detach`, { body: host ? { host } : {} })).items;
  }

  /** Attachments, optionally of one volume or host; `all` includes gone ones. */
  listAttachments(filter: Filter<AttachmentListFilter> = {}): Promise<Attachment[]> {
    return this.allPages<Attachment>('/attachments', filter);
  }

  /** One attachment by id. */
  getAttachment(id: string): Promise<Attachment> {
    return this.request('GET', `/attachments/${seg(id)}`);
  }

  /** Submits a live migration's storage handoff: grant and connect on the destination. */
  startMigration(body: MigrationKeyT): Promise<MigrationWithOperationT> {
    return this.request('POST', '/migrations', { body });
  }

  /** The open migration of an instance between two hosts. */
  findMigration(body: MigrationKeyT): Promise<Migration> {
    return this.request('POST', '/migrations/find', { body });
  }

  /** Submits completing (disconnect and revoke on the source) or aborting (undo the destination) a migration. */
  finishMigration(id: string, verb: 'complete' | 'abort'): Promise<MigrationWithOperationT> {
    return this.request('POST', `/migrations/${seg(id)}/${verb}`);
  }

  /** Every migration (every tenant's with `allTenants`, admins only). */
  listMigrations(filter: { allTenants?: boolean } = {}): Promise<Migration[]> {
    return this.allPages<Migration>('/migrations', filter);
  }

  // ---- tenants, users, tokens ----------------------------------------------------------------

  /** Every tenant with what it owns (admin). */
  listTenants(): Promise<Tenant[]> {
    return this.allPages<Tenant>('/tenants', {});
  }

  getTenant(ref: string): Promise<Tenant> {
    return this.request('GET', `/tenants/${seg(ref)}`);
  }

  createTenant(body: CreateTenantInput): Promise<Tenant> {
    return this.request('POST', '/tenants', { body });
  }

  updateTenant(ref: string, body: UpdateTenantInput): Promise<Tenant> {
    return this.request('PATCH', `/tenants/${seg(ref)}`, { body });
  }

  /** Deletes an empty tenant; with cascade, submits the durable delete of everything it owns. */
  deleteTenant(ref: string, cascade: boolean): Promise<{ operation: Operation } | undefined> {
    return this.request('DELETE', `/tenants/${seg(ref)}`, { query: cascade ? { cascade: true } : {} });
  }

  /** Every user, or those of one tenant (admin). */
  listUsers(tenant?: string): Promise<User[]> {
    return this.allPages<User>('/users', { tenant });
  }

  getUser(ref: string): Promise<User> {
    return this.request('GET', `/users/${seg(ref)}`);
  }

  createUser(body: CreateUserInput): Promise<User> {
    return this.request('POST', '/users', { body });
  }

  updateUser(ref: string, body: UpdateUserInput): Promise<User> {
    return this.request('PATCH', `/users/${seg(ref)}`, { body });
  }

  async deleteUser(ref: string): Promise<void> {
    await this.request<undefined>('DELETE', `/users/${seg(ref)}`);
  }

  /** Creates a token; its secret is in this answer only. */
  createToken(body: CreateTokenInput): Promise<CreatedToken> {
    return this.request('POST', '/tokens', { body });
  }

  /** Your tokens, or (admin) a user's. */
  async listTokens(user?: string): Promise<Token[]> {
    return (await this.request<{ items: Token[] }>('GET', '/tokens', { query: { user } })).items;
  }

  async revokeToken(ref: string, user?: string): Promise<void> {
    await this.request<undefined>('DELETE', `/tokens/${seg(ref)}`, { query: { user } });
  }

  whoami(): Promise<Whoami> {
    return this.request('GET', '/whoami');
  }
}
