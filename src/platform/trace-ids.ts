/**
 * The tracer of a service that exports nothing: every span is unrecorded, yet has its own
 * span id under its parent's trace id (or a new trace's), so log lines carry ids that join
 * up across both services. It stands in for the SDK's provider, which would load the SDK and
 * its resources (about 50 ms of every start of the edge's CLI) to record nothing. The sampled
 * flag it passes on is what the sampler OTEL_TRACES_SAMPLER names would decide (none named:
 * never, as nothing here is recorded), so a Central that records by its parent's flag still
 * sees an edge's choice:
 *
 * | OTEL_TRACES_SAMPLER        | a span under a parent   | a new trace               |
 * |----------------------------|-------------------------|---------------------------|
 * | unset, `always_off`        | not sampled             | not sampled               |
 * | `always_on`                | sampled                 | sampled                   |
 * | `traceidratio`             | by the trace id's ratio | by the trace id's ratio   |
 * | `parentbased_*`            | as the parent           | as `always_on`, `always_off` or `traceidratio` |
 */
import { randomBytes } from 'node:crypto';
import {
  TraceFlags,
  type SpanContext,
  context,
  isSpanContextValid,
  trace,
  type Context,
  type Span,
  type SpanOptions,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import type { SamplerName } from './trace-settings.ts';

/** The SDK's TraceIdRatioBasedSampler's rule, so both agree on a trace (ratio from `samplerRatio`). */
function byRatio(traceId: string, ratio: number): boolean {
  let accumulated = 0;
  for (let i = 0; i < traceId.length / 8; i++)
    accumulated = (accumulated ^ parseInt(traceId.slice(i * 8, i * 8 + 8), 16)) >>> 0;
  return accumulated <= Math.floor(ratio * 0xffffffff);
}

function sampled(
  sampler: SamplerName | undefined,
  ratio: number,
  traceId: string,
  parent: SpanContext | undefined,
): boolean {
  if (parent !== undefined && sampler?.startsWith('parentbased_'))
    return (parent.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED;
  switch (sampler) {
    case 'always_on':
    case 'parentbased_always_on':
      return true;
    case 'traceidratio':
    case 'parentbased_traceidratio':
      return byRatio(traceId, ratio);
    default:
      return false;
  }
}

class IdTracer implements Tracer {
  readonly #sampler: SamplerName | undefined;
  readonly #ratio: number;

  constructor(sampler: SamplerName | undefined, ratio: number) {
    this.#sampler = sampler;
    this.#ratio = ratio;
  }

  startSpan(_name: string, options?: SpanOptions, ctx: Context = context.active()): Span {
    const found = options?.root ? undefined : trace.getSpanContext(ctx);
    const parent = found !== undefined && isSpanContextValid(found) ? found : undefined;
    const traceId = parent?.traceId ?? randomBytes(16).toString('hex');
    return trace.wrapSpanContext({
      traceId,
      spanId: randomBytes(8).toString('hex'),
      traceFlags: sampled(this.#sampler, this.#ratio, traceId, parent) ? TraceFlags.SAMPLED : TraceFlags.NONE,
      ...(parent?.traceState ? { traceState: parent.traceState } : {}),
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
  readonly #tracer: IdTracer;
  constructor(sampler: SamplerName | undefined, ratio: number) {
    this.#tracer = new IdTracer(sampler, ratio);
  }
  getTracer(_name?: string): Tracer {
    return this.#tracer;
  }
}
