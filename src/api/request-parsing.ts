import { Ajv, type ValidateFunction } from 'ajv';
import type { FastifyInstance, FastifyRequest, FastifySchema, FastifySchemaCompiler } from 'fastify';
import { StowageError } from '../core/errors.js';

/**
 * How requests are read before a handler sees them. Bodies are JSON and are never coerced: a
 * `true` where a string belongs is an error, not the name "true". Query strings, path parameters
 * and headers are text by nature, so they are coerced — but an integer only from plain decimal
 * digits (`1e309`, `0x10`, `1.5` and ` 5` are refused), so no Infinity ever reaches the store.
 */

const bodyAjv = new Ajv({ coerceTypes: false, useDefaults: true, removeAdditional: false, allErrors: false, strict: false });
const textAjv = new Ajv({ coerceTypes: 'array', useDefaults: true, removeAdditional: false, allErrors: false, strict: false });

// At most 15 digits: every such number is a safe integer; the schemas' own bounds do the rest.
const PLAIN_INTEGER = /^-?[0-9]{1,15}$/;

interface SchemaNode { readonly type?: unknown; readonly properties?: Readonly<Record<string, SchemaNode>> }

/** The names of a text part's integer properties (query strings are flat objects). */
function integerFields(schema: SchemaNode): string[] {
  return Object.entries(schema.properties ?? {}).filter(([, s]) => s.type === 'integer').map(([k]) => k);
}

type Validation = ReturnType<FastifySchemaCompiler<unknown>>;
interface Problem { readonly instancePath: string; readonly message?: string | undefined; readonly params: object }

// Fastify marks a returned Error as a validation error (400, `validationContext` set) and the API's
// error handler turns its `validation` list into VALIDATION_FAILED naming the field.
function failed(problems: readonly Problem[]): { error: Error } {
  return { error: Object.assign(new Error(problems[0]?.message ?? 'validation failed'), { validation: problems }) };
}

function textValidator(schema: SchemaNode): Validation {
  const validate: ValidateFunction = textAjv.compile(schema);
  const ints = integerFields(schema);
  return (data: unknown) => {
    if (data !== null && typeof data === 'object') {
      for (const k of ints) {
        const raw = (data as Record<string, unknown>)[k];
        if (typeof raw === 'string' && !PLAIN_INTEGER.test(raw)) {
          return failed([{ instancePath: `/${k}`, message: `must be a whole number written in decimal digits, got ${JSON.stringify(raw.slice(0, 40))}`, params: {} }]);
        }
      }
    }
    return validate(data) ? { value: data } : failed(validate.errors ?? []);
  };
}

/** Validator compiler: bodies strictly, everything else with integer-only coercion. */
export const validatorCompiler: FastifySchemaCompiler<FastifySchema> = ({ schema, httpPart }) => {
  if (httpPart === 'body') {
    const validate = bodyAjv.compile(schema);
    return (data: unknown) => (validate(data) ? { value: data } : failed(validate.errors ?? []));
  }
  return textValidator(schema as SchemaNode);
};

/**
 * Every number written in a JSON text must survive parsing exactly: `1e309` is not Infinity and
 * 18446744073709551617 is not 18446744073709551616. Scans the text outside strings.
 */
export function assertExactNumbers(text: string): void {
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i);
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') { inString = true; continue; }
    if (c !== '-' && (c < '0' || c > '9')) continue;
    const m = /^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m) continue;
    const token = m[0];
    i += token.length - 1;
    const n = Number(token);
    if (!Number.isFinite(n)) {
      throw new StowageError('VALIDATION_FAILED', `invalid body: number ${token.slice(0, 40)} is out of range`, { number: token.slice(0, 40) });
    }
    // An integer is exact when it is the double's own value or its shortest form (what
    // JSON.stringify writes for 2 ** 60: 1152921504606847000); anything else lost digits.
    if (m[1] === undefined && m[2] === undefined && BigInt(token) !== BigInt(n) && String(n) !== token) {
      throw new StowageError('VALIDATION_FAILED', `invalid body: integer ${token.slice(0, 40)} cannot be represented exactly; integers must be at most ${String(Number.MAX_SAFE_INTEGER)}`, { number: token.slice(0, 40) });
    }
  }
}

const CHARSET_RE = /;\s*charset\s*=\s*"?([^";\s]+)"?/i;

/**
 * Replaces Fastify's JSON parser with one that refuses a charset other than UTF-8 (415: the text
 * would otherwise be read as UTF-8 anyway) and numbers that JSON.parse would change.
 */
export function installJsonParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req: FastifyRequest, body: string | Buffer, done) => {
    const charset = CHARSET_RE.exec(req.headers['content-type'] ?? '')?.[1]?.toLowerCase();
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      done(new StowageError('UNSUPPORTED_MEDIA_TYPE', `charset ${JSON.stringify(charset)} is not supported; send JSON as UTF-8`, { charset }), undefined);
      return;
    }
    const text = typeof body === 'string' ? body : body.toString('utf8');
    try {
      assertExactNumbers(text);
    } catch (err) {
      done(err as StowageError, undefined);
      return;
    }
    void parse(req, text, done);
  });
}
