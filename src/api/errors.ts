import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TSchema } from '@sinclair/typebox';
import { ERROR_CODES, StowageError, type ErrorCode } from '../core/errors.js';
import { ErrorBodySchema } from '../core/models.js';

/** Maps Fastify's own error codes to ours. */
const FASTIFY_CODES: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'VALIDATION_FAILED',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'VALIDATION_FAILED',
  FST_ERR_CTP_INVALID_JSON_BODY: 'VALIDATION_FAILED',
};

/** The one error handler: every failure leaves as `{ code, message, details }` with the code's status. */
export function errorHandler(err: FastifyError | StowageError | Error, req: FastifyRequest, reply: FastifyReply): void {
  let e: StowageError;
  if (err instanceof StowageError) {
    e = err;
  } else if ('validation' in err && err.validation) {
    const first = err.validation[0];
    const where = first ? `${err.validationContext ?? 'request'}${first.instancePath || ''}` : 'request';
    e = new StowageError('VALIDATION_FAILED', `invalid ${where}: ${first?.message ?? err.message}`, {
      errors: err.validation.map((v) => ({ path: v.instancePath, message: v.message, params: v.params })),
    });
  } else if ('code' in err && typeof err.code === 'string' && FASTIFY_CODES[err.code]) {
    const code = FASTIFY_CODES[err.code] ?? 'VALIDATION_FAILED';
    e = new StowageError(code, code === 'PAYLOAD_TOO_LARGE' ? 'request body is too large' : err.message, {});
  } else if ('statusCode' in err && typeof err.statusCode === 'number' && err.statusCode < 500) {
    e = new StowageError(err.statusCode === 404 ? 'NOT_FOUND' : 'VALIDATION_FAILED', err.message, {});
  } else {
    req.log.error({ err }, 'unhandled error');
    e = new StowageError('INTERNAL', 'internal error; see the server log', {});
  }
  const retryAfter = e.details.retryAfterSeconds;
  if (e.code === 'RATE_LIMITED' && typeof retryAfter === 'number') void reply.header('retry-after', String(retryAfter));
  void reply.status(e.httpStatus).send(e.toJSON());
}

/** Response schemas for the error statuses a route can return (for OpenAPI). */
export function errorResponses(...codes: ErrorCode[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {};
  for (const c of ['VALIDATION_FAILED', 'UNAUTHORIZED', 'RATE_LIMITED', ...codes] as ErrorCode[]) {
    const status = ERROR_CODES[c];
    out[status] = Type.Ref(ErrorBodySchema.$id ?? 'Error');
  }
  return out;
}
