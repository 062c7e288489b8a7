import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { Type } from '@sinclair/typebox';
import { StowageError } from '../core/errors.js';
import { ErrorBodySchema } from '../core/models.js';
import { IdempotencyRepository } from '../store/idempotency-repository.js';
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
/** A claim this old without an answer belongs to a process that died mid-request. */
const STALE_CLAIM_MS = 15 * 60_000;

/** The header as OpenAPI documents it on every mutating route. */
export const IdempotencyHeaders = Type.Object({
  [KEY_HEADER]: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$', description: 'retries with this key replay the first answer; another request with it is 409' })),
});

interface Claim { readonly tenantId: string; readonly key: string }

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
export function registerIdempotency(scope: FastifyInstance, store: Store): void {
  const repo = new IdempotencyRepository();

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
      if (await repo.claim(store.db, { tenant_id: tenantId, key, fingerprint: fp, created_at: nowIso() })) {
        req.idempotencyClaim = { tenantId, key };
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
      if (Date.now() - Date.parse(row.created_at) > STALE_CLAIM_MS) {
        await repo.release(store.db, tenantId, key, row.created_at);
        continue;
      }
      if (Date.now() > deadline) {
        throw new StowageError('IDEMPOTENCY_CONFLICT', `a request with Idempotency-Key "${key}" is still running; retry later`, { key });
      }
      await delay(25);
    }
  });

  scope.addHook('onSend', async (req: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const claim = req.idempotencyClaim;
    if (!claim) return payload;
    req.idempotencyClaim = undefined;
    if (reply.statusCode < 300) {
      await repo.complete(store.db, claim.tenantId, claim.key, reply.statusCode, typeof payload === 'string' && payload !== '' ? payload : null);
    } else {
      await repo.release(store.db, claim.tenantId, claim.key);
    }
    return payload;
  });
}
