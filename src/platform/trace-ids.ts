/**
 * The tracer of a service that exports nothing: every span is unrecorded, yet has its own
 * span id under its parent's trace id (or a new trace's), so log lines carry ids that join
 * up across both services. It stands in for the SDK's provider with an always-off sampler,
 * which does the same but weighs the SDK and its resources: about 50 ms at every start of
 * the edge's CLI and 6 MB of every process (docs/scaling.md).
 */
import { randomBytes } from 'node:crypto';
import {
  TraceFlags,
  context,
  isSpanContextValid,
  trace,
  type Context,
  type Span,
  type SpanOptions,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';

class IdTracer implements Tracer {
  startSpan(_name: string, options?: SpanOptions, ctx: Context = context.active()): Span {
    const parent = options?.root ? undefined : trace.getSpanContext(ctx);
    const inherits = parent !== undefined && isSpanContextValid(parent);
    return trace.wrapSpanContext({
      traceId: inherits ? parent.traceId : randomBytes(16).toString('hex'),
      spanId: randomBytes(8).toString('hex'),
      traceFlags: TraceFlags.NONE,
      ...(inherits && parent.traceState ? { traceState: parent.traceState } : {}),
    });
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    options: SpanOptions,
    fn: F,
  ): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    options: SpanOptions,
    ctx: Context,
    fn: F,
  ): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    ...rest: [F] | [SpanOptions, F] | [SpanOptions, Context, F]
  ): ReturnType<F> {
    const fn = rest.at(-1) as F;
    const options = rest.length > 1 ? (rest[0] as SpanOptions) : undefined;
    const ctx = rest.length > 2 ? (rest[1] as Context) : context.active();
    const span = this.startSpan(name, options, ctx);
    return context.with(trace.setSpan(ctx, span), fn as (span: Span) => ReturnType<F>, undefined, span);
  }
}

/** One tracer serves every name: nothing is recorded, so nothing tells them apart. */
export class IdTracerProvider implements TracerProvider {
  readonly #tracer = new IdTracer();
  getTracer(): Tracer {
    return this.#tracer;
  }
}
