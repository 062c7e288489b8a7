import type { PortName } from '../drivers/sdk/ports.js';
import type { ErrorCode, ErrorDetails } from '../core/errors.js';

/**
 * The wire contract between the control plane and `stowage node`: HTTPS (TLS 1.3) where each side
 * pins the other's self-signed certificate, exchanged at enrollment (system/tls-identity.ts). The
 * node holds no desired state: every call names the backend it is for with its URI and options, and
 * the node builds that backend's driver (the same driver code the control plane runs for a local
 * backend) on first use. Bodies are JSON, but the volume data routes, which stream raw bytes.
 */

/** Bumped on any incompatible change; a node answering another one is `version_mismatch`. */
export const NODE_PROTOCOL_VERSION = 1;

/** The port `stowage node run --listen` and `stowage node create --address` default to. */
export const NODE_DEFAULT_PORT = 8751;

export const NODE_ROUTES = {
  /** GET → NodeHealth. The control plane's heartbeat; also how it learns the node restarted (bootId). */
  health: '/v1/health',
  /** POST NodeCall → NodeAnswer. One driver method, run on the node. */
  call: '/v1/call',
  /** POST { epoch } → NodeHealth: the control plane opens a new epoch after a (re)connect; older calls are refused from then on. */
  epoch: '/v1/epoch',
  /** GET ?backend=<BackendSpec JSON>&handle=<DriverHandle JSON> → the volume's bytes (application/octet-stream, content-length). */
  read: '/v1/data/read',
  /** PUT ?backend=…&handle=… with the bytes as body → NodeAnswer once written and flushed. */
  write: '/v1/data/write',
} as const;

/** Headers every control-plane request carries. */
export const NODE_HEADERS = {
  /** The epoch the control plane believes the node is in (decimal). */
  epoch: 'x-stowage-epoch',
  /** The node name the control plane believes it is talking to. */
  node: 'x-stowage-node',
  /** The operation a call is made for, for the node's log (never a secret). */
  operation: 'x-stowage-operation',
  /** The data routes: the format of the streamed image (raw; the writer refuses another than its volume's). */
  format: 'x-stowage-format',
} as const;

/** Which backend a call is for: the node builds (and caches) its driver from this. */
export interface BackendSpec {
  readonly id: string;
  readonly name: string;
  readonly uri: string;
  readonly options: Readonly<Record<string, string>>;
}

/** Which object of the driver a call goes to: the driver itself, or one of its ports. */
export type CallTarget = 'driver' | PortName;

/** One driver method to run on the node. `args` are the method's arguments but the AbortSignal, JSON-encoded. */
export interface NodeCall {
  readonly backend: BackendSpec;
  readonly target: CallTarget;
  readonly method: string;
  readonly args: readonly unknown[];
}

/** The error of a call, as StowageError.toJSON gives it (codes cross the wire unchanged). */
export interface WireError {
  readonly code: ErrorCode;
  readonly message: string;
  readonly details: ErrorDetails;
}

/** The answer to a call: the node's epoch and boot id with it, so a late answer from an older epoch is recognised and ignored. */
export type NodeAnswer =
  | { readonly ok: true; readonly epoch: number; readonly bootId: string; readonly value: unknown }
  | { readonly ok: false; readonly epoch: number; readonly bootId: string; readonly error: WireError };

/** What a node says about itself at every heartbeat. */
export interface NodeHealth {
  readonly name: string;
  /** Package version of the node process. */
  readonly version: string;
  readonly protocol: number;
  /** Random per process start: a different one means the node restarted (and lost nothing but its caches). */
  readonly bootId: string;
  /** The highest epoch the control plane has opened with this process (0 before the first). */
  readonly epoch: number;
  /** The node's clock (ISO 8601), for skew. */
  readonly time: string;
  /** Calls running now. */
  readonly inFlight: number;
  /** Backends the node has built drivers for since it started. */
  readonly backends: readonly string[];
}
