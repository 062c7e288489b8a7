import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { Type } from '@sinclair/typebox';
import { StowageError } from '../core/errors.js';
import { ErrorBodySchema } from '../core/models.js';
import type { IdempotencyRepository } from '../store/idempotency-repository.js';
import { nowIso } from '../store/json.js';
import type { Store } from '../store/store.js';

/**
 * `Idempotency-Key` on every mutating route. The first request with a key claims it with its
 * fingerprint (method, path, body); a retry of the same request gets the first one's answer
 * replayed, even while that one is still running (the retry waits for it); the same key on a
 * different request is 409 IDEMPOTENCY_CONFLICT, never a silent replay of something else.
 * A request that failed changed nothing, so its key is released for a later attempt.
 */

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const KEY_HEADER = 'idempotency-key';
/** How long a retry waits for the first request with its key to answer. */
const WAIT_FOR_FIRST_MS = 120_000;
/**
 * The lease of an unanswered claim: the request holding it renews it every third of this, so a
 * claim past its lease belongs to a process that died mid-request (kill -9, crash) and is taken over.
 */
const CLAIM_LEASE_MS = 10_000;

/**
 * The route config (spread into `config`) of a route whose answer carries a one-time secret (an API
 * token, an enrollment token): the idempotency layer does not keep its answer, which would store
 * the secret in clear, so a retry with the same key runs again (a fresh enrollment token; for an
 * API token, NAME_TAKEN: revoke it and make another).
 */
export const SECRET_ANSWER = { secretAnswer: true } as const;

const leaseEnd = (): string => new Date(Date.now() + CLAIM_LEASE_MS).toISOString();

/** The header as OpenAPI documents it on every mutating route. */
export const IdempotencyHeaders = Type.Object({
  [KEY_HEADER]: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$', description: 'retries with this key replay the first answer; another request with it is 409' })),
});

interface Claim { readonly tenantId: string; readonly key: string; readonly renewal: NodeJS.Timeout }

declare module 'fastify' {
  interface FastifyRequest {
    idempotencyClaim?: Claim | undefined;
  }
}

function fingerprint(req: FastifyRequest): string {
  const path = req.url.split('?')[0] ?? '';
  return createHash('sha256').update(JSON.stringify([req.method, path, req.body ?? null])).digest('hex');
}

/** Adds the header (and the 409) to every mutating route of `scope` registered after this call, and the hooks that enforce it. */
export function registerIdempotency(scope: FastifyInstance, store: Store, repo: IdempotencyRepository): void {
  scope.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (!methods.some((m) => MUTATING.has(m))) return;
    const schema = { ...(route.schema ?? {}) } as Record<string, unknown>;
    schema.headers ??= IdempotencyHeaders;
    const response = { ...((schema.response as Record<string, unknown> | undefined) ?? {}) };
    response[409] ??= Type.Ref(ErrorBodySchema.$id ?? 'Error');
    schema.response = response;
    route.schema = schema;
  });

  scope.addHook('preHandler', async (req: FastifyRequest, reply: FastifyReply) => {
    const key = req.headers[KEY_HEADER];
    if (!MUTATING.has(req.method) || typeof key !== 'string') return;
    const tenantId = req.principal.tenantId;
    const fp = fingerprint(req);
    const deadline = Date.now() + WAIT_FOR_FIRST_MS;
    for (;;) {
      if (await repo.claim(store.db, { tenant_id: tenantId, key, fingerprint: fp, created_at: nowIso(), claim_expires_at: leaseEnd() })) {
        const renewal = setInterval(() => {
          repo.renew(store.db, tenantId, key, leaseEnd()).catch((err: unknown) => { req.log.warn({ err }, 'could not renew an idempotency claim'); });
        }, CLAIM_LEASE_MS / 3);
        renewal.unref();
        req.idempotencyClaim = { tenantId, key, renewal };
        return;
      }
      const row = await repo.find(store.db, tenantId, key);
      if (!row) continue; // released meanwhile: claim again
      if (row.fingerprint !== fp) {
        throw new StowageError('IDEMPOTENCY_CONFLICT', `Idempotency-Key "${key}" was already used for a different request; use a new key for a new request`, { key });
      }
      if (row.status_code !== null) {
        void reply.code(row.status_code).header('idempotent-replayed', 'true');
        if (row.response === null) return reply.send();
        return reply.header('content-type', 'application/json; charset=utf-8').send(row.response);
      }
      if (Date.parse(row.claim_expires_at ?? row.created_at) < Date.now()) {
        // Its request died mid-way: take the key over. What that request already committed is
        // found again by the route's own rules (a volume's operation by its key; a name taken).
        await repo.release(store.db, tenantId, key, row.created_at);
        continue;
      }
      if (Date.now() > deadline) {
        throw new StowageError('IDEMPOTENCY_CONFLICT', `a request with Idempotency-Key "${key}" is still running; retry later`, { key });
      }
      await delay(25);
    }
  });

  // A request that never reached onSend (its client went away) stops renewing, so its claim expires.
  scope.addHook('onResponse', async (req: FastifyRequest) => {
    if (req.idempotencyClaim) clearInterval(req.idempotencyClaim.renewal);
  });

  scope.addHook('onSend', async (req: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const claim = req.idempotencyClaim;
    if (!claim) return payload;
    req.idempotencyClaim = undefined;
    clearInterval(claim.renewal);
    // A route whose answer carries a one-time secret (config.secretAnswer) is not replayed from the store, which would keep it in clear.
    if (reply.statusCode < 300 && (req.routeOptions.config as { secretAnswer?: boolean }).secretAnswer !== true) {
      await repo.complete(store.db, claim.tenantId, claim.key, reply.statusCode, typeof payload === 'string' && payload !== '' ? payload : null);
    } else {
      await repo.release(store.db, claim.tenantId, claim.key);
    }
    return payload;
  });
}
