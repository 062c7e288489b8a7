import { Type, type Static, type TLiteral, type TObject, type TUnion } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { StowageError } from '../core/errors.js';
import type { OperationHandler, StepContext } from './handler.js';

/** One idempotent step of a typed operation; it reads the operation's input as its schema says. */
export interface TypedStep<I extends object> {
  readonly name: string;
  run(ctx: StepContext<I>): Promise<void>;
}

/** What an operation kind is written as: its kind literal, input schema, steps, compensation and result. */
export interface OperationSpec<K extends string, S extends TObject, R extends Record<string, unknown>> {
  readonly kind: K;
  /**
   * The input's schema. What steps `remember` belongs in it too (as optional fields): a resumed run
   * reads the remembered values back through the same check.
   */
  readonly input: S;
  readonly steps: readonly TypedStep<Static<S>>[];
  /** Undoes what the steps may have done and leaves the target final; idempotent (see OperationHandler). */
  compensate(ctx: StepContext<Static<S>>, error: StowageError): Promise<void>;
  result?(ctx: StepContext<Static<S>>): Promise<R>;
}

/** A defined operation kind: the engine's handler, with its kind literal and input schema kept in the type. */
export interface DefinedOperation<K extends string, S extends TObject> extends OperationHandler {
  readonly kind: K;
  readonly input: S;
}

/**
 * Defines an operation kind. The input is checked against `spec.input` when the operation is
 * enqueued and when a worker reads it back; steps see `ctx.input` typed by the schema, so no step
 * casts what it reads.
 */
export function defineOperation<K extends string, S extends TObject, R extends Record<string, unknown> = Record<string, never>>(spec: OperationSpec<K, S, R>): DefinedOperation<K, S> {
  const inputProblem = (input: unknown): string | null => {
    const first = Value.Errors(spec.input, input).First();
    return first ? `${first.path || '(input)'}: ${first.message}` : null;
  };
  const typed = (ctx: StepContext): StepContext<Static<S>> => {
    const { input } = ctx;
    // The engine refused a non-matching row before any step; a step's own `remember` is typed, so
    // this only fails on a bug, and then before any step acts on the value.
    if (!Value.Check(spec.input, input)) {
      throw new StowageError('INTERNAL', `operation ${ctx.operation.id} (${spec.kind}) has an input that does not fit its schema: ${inputProblem(input) ?? '?'}`, { kind: spec.kind });
    }
    return { ...ctx, input, remember: (patch) => ctx.remember(patch) };
  };
  return {
    kind: spec.kind,
    input: spec.input,
    inputProblem,
    steps: spec.steps.map((s) => ({ name: s.name, run: (ctx: StepContext) => s.run(typed(ctx)) })),
    compensate: (ctx, error) => spec.compensate(typed(ctx), error),
    result: async (ctx: StepContext) => (spec.result ? spec.result(typed(ctx)) : {}),
  };
}

/** A schema for one of `values` (checked by Value.Check, unlike an Unsafe enum). */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T): TUnion<TLiteral<T[number]>[]> {
  return Type.Union(values.map((v) => Type.Literal(v)));
}
