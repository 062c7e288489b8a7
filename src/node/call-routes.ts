import type { Logger } from 'pino';
import { StowageError } from '../core/errors.js';
import { toDriverError } from '../drivers/sdk/driver-errors.js';
import { requirePort, type PortName } from '../drivers/sdk/ports.js';
import type {
  BlockDriver, CreateVolume, DriverHandle, GrantRequest, HostIdentity, ReconcileOptions,
} from '../drivers/sdk/types.js';
import { argKindsOf, isCallable, type WireArgKind, type WireReconcileAnswer, type WireReconcileOptions } from '../nodes/node-calls.js';
import { NODE_HEADERS, NODE_ROUTES, type BackendSpec, type CallTarget, type NodeAnswer, type NodeCall } from '../nodes/node-protocol.js';
import type { Failpoints } from '../operations/failpoints.js';
import type { NodeDriverHost } from './driver-host.js';
import { readJsonBody, sendJson, type NodeRouteHandler } from './node-server.js';

const TARGETS: readonly CallTarget[] = ['driver', 'access', 'snapshots', 'revert', 'clones', 'data', 'exports'];

/**
 * The node's route for NODE_ROUTES.call: checks the NodeCall strictly (the backend spec, a target
 * and method from NODE_CALLABLE, the arguments' kinds), runs the method on the backend's driver
 * with the request's signal (the control plane hanging up aborts it), and answers a NodeAnswer
 * with the node's epoch and boot id. A driver's failure is an answer too (`ok: false`, HTTP 200,
 * the code as the driver gave it, command failures as DRIVER_FAILED/TIMEOUT); a malformed or
 * refused call is an HTTP error. Calls are logged at debug level with their arguments redacted.
 * `failpoints` (recovery tests only) are hit as `<target>.<method>:before` and `:after` around the
 * driver method (see nodeFailpoints in run-node.ts).
 */
export function callRoutes(host: NodeDriverHost, logger?: Logger, failpoints?: Failpoints): Readonly<Record<string, NodeRouteHandler>> {
  const hit = failpoints?.enabled ? failpoints : undefined;
  const handler: NodeRouteHandler = async (req, res, ctx) => {
    if (req.method !== 'POST') throw new StowageError('NOT_FOUND', `no route ${req.method ?? ''} ${NODE_ROUTES.call}`, {});
    const call = parseNodeCall(await readJsonBody(req));
    const startedAt = performance.now();
    const operation = req.headers[NODE_HEADERS.operation];
    const base = { backend: call.backend.name, target: call.target, method: call.method, epoch: ctx.epoch, ...(typeof operation === 'string' ? { operation } : {}) };
    logger?.debug({ ...base, args: redactArgs(call.args) }, 'driver call');
    let answer: NodeAnswer;
    try {
      const driver = host.driverFor(call.backend);
      ctx.state.backends.add(call.backend.id);
      await hit?.hit(`${call.target}.${call.method}:before`);
      const value = await dispatch(driver, call, ctx.signal);
      await hit?.hit(`${call.target}.${call.method}:after`);
      answer = { ok: true, epoch: ctx.state.epoch, bootId: ctx.state.bootId, value: value ?? null };
    } catch (err) {
      const e = toDriverError(err);
      if (e.code === 'INTERNAL') logger?.error({ ...base, err }, 'driver call failed');
      answer = { ok: false, epoch: ctx.state.epoch, bootId: ctx.state.bootId, error: e.toJSON() };
    }
    logger?.debug({ ...base, ok: answer.ok, ...(answer.ok ? {} : { code: answer.error.code }), durationMs: Math.round(performance.now() - startedAt) }, 'driver call done');
    sendJson(res, 200, answer);
  };
  return { [NODE_ROUTES.call]: handler };
}

/** A NodeCall from an untrusted body; VALIDATION_FAILED for a malformed one, FORBIDDEN for a method not callable remotely. */
export function parseNodeCall(body: unknown): NodeCall {
  if (!isRecord(body)) throw invalid('the call must be a JSON object');
  const backend = parseBackendSpec(body.backend);
  const target = body.target;
  if (typeof target !== 'string' || !(TARGETS as readonly string[]).includes(target)) throw invalid(`target must be one of ${TARGETS.join(', ')}`);
  const method = body.method;
  if (typeof method !== 'string') throw invalid('method must be a string');
  if (!isCallable(target as CallTarget, method)) {
    throw new StowageError('FORBIDDEN', `${target}.${method} is not callable on a node`, { target, method });
  }
  const args = body.args;
  if (!Array.isArray(args)) throw invalid('args must be an array');
  const kinds = argKindsOf(target as CallTarget, method);
  if (args.length !== kinds.length) throw invalid(`${target}.${method} takes ${kinds.length} argument(s), got ${args.length}`);
  kinds.forEach((kind, i) => {
    if (!hasKind(args[i], kind)) throw invalid(`argument ${i + 1} of ${target}.${method} must be ${kind}`);
  });
  const extra = Object.keys(body).filter((k) => !['backend', 'target', 'method', 'args'].includes(k));
  if (extra.length > 0) throw invalid(`unknown field(s) ${extra.join(', ')}`);
  return { backend, target: target as CallTarget, method, args: args as unknown[] };
}

function parseBackendSpec(v: unknown): BackendSpec {
  if (!isRecord(v)) throw invalid('backend must be an object');
  for (const k of ['id', 'name', 'uri'] as const) {
    if (typeof v[k] !== 'string' || v[k] === '') throw invalid(`backend.${k} must be a non-empty string`);
  }
  const options = v.options;
  if (!isRecord(options) || !Object.values(options).every((x) => typeof x === 'string')) throw invalid('backend.options must map names to strings');
  const extra = Object.keys(v).filter((k) => !['id', 'name', 'uri', 'options'].includes(k));
  if (extra.length > 0) throw invalid(`unknown backend field(s) ${extra.join(', ')}`);
  return { id: v.id as string, name: v.name as string, uri: v.uri as string, options: options as Record<string, string> };
}

function hasKind(v: unknown, kind: WireArgKind): boolean {
  switch (kind) {
    case 'object': return isRecord(v);
    case 'object-or-null': return v === null || isRecord(v);
    case 'array': return Array.isArray(v);
    case 'string': return typeof v === 'string';
    case 'number': return typeof v === 'number' && Number.isFinite(v);
  }
}

/** Runs the (already allowed and shape-checked) call on the driver. */
async function dispatch(driver: BlockDriver, call: NodeCall, signal: AbortSignal): Promise<unknown> {
  const a = call.args;
  const port = <N extends PortName>(name: N): NonNullable<BlockDriver[N]> => requirePort(driver, name, call.backend.name);
  switch (`${call.target}.${call.method}`) {
    case 'driver.probe': return driver.probe(signal);
    case 'driver.createVolume': return driver.createVolume(a[0] as CreateVolume, signal);
    case 'driver.deleteVolume': return driver.deleteVolume(a[0] as DriverHandle, signal);
    case 'driver.resizeVolume': return driver.resizeVolume(a[0] as DriverHandle, a[1] as number, signal);
    case 'driver.listVolumes': return driver.listVolumes(signal);
    case 'access.grant': return port('access').grant(a[0] as DriverHandle, a[1] as GrantRequest, signal);
    case 'access.revoke': return port('access').revoke(a[0] as DriverHandle, a[1] as HostIdentity, signal);
    case 'access.list': return port('access').list(signal);
    case 'snapshots.create': return port('snapshots').create(a[0] as DriverHandle, a[1] as string, signal);
    case 'snapshots.delete': return port('snapshots').delete(a[0] as DriverHandle, signal);
    case 'revert.revert': return port('revert').revert(a[0] as DriverHandle, a[1] as DriverHandle, signal);
    case 'clones.clone': return port('clones').clone(a[0] as DriverHandle, a[1] as CreateVolume, signal);
    case 'exports.reconcile': return reconcile(port('exports'), a[0] as Parameters<NonNullable<BlockDriver['exports']>['reconcile']>[0], parseReconcileOptions(a[1]), signal);
    case 'exports.drift': return port('exports').drift(a[0] as Parameters<NonNullable<BlockDriver['exports']>['drift']>[0], signal);
    default: throw new StowageError('FORBIDDEN', `${call.target}.${call.method} is not callable on a node`, { target: call.target, method: call.method });
  }
}

/** Runs one reconcile pass with `knownVolumes` answered from the control plane's resolved set (see WireReconcileOptions). */
async function reconcile(
  port: NonNullable<BlockDriver['exports']>,
  desired: Parameters<NonNullable<BlockDriver['exports']>['reconcile']>[0],
  wire: WireReconcileOptions | null,
  signal: AbortSignal,
): Promise<WireReconcileAnswer> {
  if (wire === null) return { report: await port.reconcile(desired, signal), unanswered: [] };
  const asked = new Set(wire.asked);
  const known = new Set(wire.known);
  const unanswered = new Set<string>();
  const options: ReconcileOptions = {
    knownVolumes: async (ids) => {
      for (const id of ids) if (!asked.has(id)) unanswered.add(id);
      // Not asked yet: kept (counted as known) until the control plane has answered for it.
      return new Set(ids.filter((id) => !asked.has(id) || known.has(id)));
    },
  };
  const report = await port.reconcile(desired, signal, options);
  return { report, unanswered: [...unanswered] };
}

function parseReconcileOptions(v: unknown): WireReconcileOptions | null {
  if (v === null) return null;
  const o = v as Record<string, unknown>;
  const strings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string');
  if (!strings(o.asked) || !strings(o.known)) throw invalid('reconcile options must be { asked: string[], known: string[] } or null');
  return { asked: o.asked, known: o.known };
}

/** Field names whose values are never logged (CHAP secrets in grants, anything key- or token-like). */
const SECRET_KEY = /secret|password|passwd|token|key/i;

/** A copy of `v` fit for a log line: values under secret-looking keys replaced. */
export function redactArgs(v: unknown, depth = 0): unknown {
  if (depth > 8) return '[deep]';
  if (Array.isArray(v)) return v.map((x) => redactArgs(x, depth + 1));
  if (isRecord(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, SECRET_KEY.test(k) ? '[redacted]' : redactArgs(x, depth + 1)]));
  return v;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function invalid(message: string): StowageError {
  return new StowageError('VALIDATION_FAILED', message, {});
}
