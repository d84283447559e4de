/**
 * Sampling (platform/tracing.ts, tracing-sdk.ts): a service that exports nothing loads no
 * SDK and records no span, yet its spans keep their ids, so log lines still carry a trace id
 * and the edge's trace still reaches Central; a service that exports records every span,
 * also under an edge whose traceparent says "not sampled". Tracing starts here with no
 * exporter, as a service without a collector starts it, before pino is loaded.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ROOT_CONTEXT, SpanKind, TraceFlags, trace } from '@opentelemetry/api';
import { SamplingDecision, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace';
import { IdTracerProvider } from '../src/platform/trace-ids.ts';
import { startTracing } from '../src/platform/tracing.ts';
import { samplerName, samplerRatio } from '../src/platform/trace-settings.ts';
import { samplerFromEnv } from '../src/platform/tracing-sdk.ts';

const tracing = await startTracing({ serviceName: 'dbupdate-test', env: {} });
const { capturedLog } = await import('./helpers/log.ts');
const { loggerOptions } = await import('../src/platform/logger.ts');
const { startStep } = await import('../src/platform/step.ts');

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
/** A context whose parent came over the wire with the given flags. */
const remoteParent = (flags: TraceFlags) =>
  trace.setSpanContext(ROOT_CONTEXT, {
    traceId: TRACE_ID,
    spanId: 'b7ad6b7169203331',
    traceFlags: flags,
    isRemote: true,
  });
const decide = (env: NodeJS.ProcessEnv, flags: TraceFlags) =>
  samplerFromEnv(env).shouldSample(remoteParent(flags), TRACE_ID, 'POST', SpanKind.SERVER, {}, []).decision;

describe('default sampler', () => {
  it('records nothing when nothing exports, whatever the parent says, and keeps its trace', () => {
    assert.equal(tracing.exporter, 'none');
    for (const flags of [TraceFlags.SAMPLED, TraceFlags.NONE]) {
      const span = trace.getTracer('dbupdate-test').startSpan('POST', {}, remoteParent(flags));
      assert.equal(span.isRecording(), false);
      assert.equal(span.spanContext().traceId, TRACE_ID);
      assert.notEqual(span.spanContext().spanId, 'b7ad6b7169203331');
    }
  });

  it('passes on the flag the named sampler would set, though nothing is exported', () => {
    const flagOf = (sampler: Parameters<typeof samplerName>[0], flags: TraceFlags | undefined) => {
      const ctx = flags === undefined ? ROOT_CONTEXT : remoteParent(flags);
      const name = samplerName(sampler);
      return new IdTracerProvider(name, samplerRatio(sampler))
        .getTracer('t')
        .startSpan('POST', {}, ctx)
        .spanContext().traceFlags;
    };
    const { SAMPLED, NONE } = TraceFlags;
    for (const flags of [SAMPLED, NONE, undefined]) {
      assert.equal(flagOf({}, flags), NONE);
      assert.equal(flagOf({ OTEL_TRACES_SAMPLER: 'always_on' }, flags), SAMPLED);
      assert.equal(flagOf({ OTEL_TRACES_SAMPLER: 'always_off' }, flags), NONE);
    }
    assert.equal(flagOf({ OTEL_TRACES_SAMPLER: 'parentbased_always_off' }, SAMPLED), SAMPLED);
    assert.equal(flagOf({ OTEL_TRACES_SAMPLER: 'parentbased_always_on' }, NONE), NONE);
    assert.equal(flagOf({ OTEL_TRACES_SAMPLER: 'parentbased_always_on' }, undefined), SAMPLED);
  });

  it("samples by trace id ratio as the SDK's sampler does", () => {
    const tracer = new IdTracerProvider('traceidratio', 0.5).getTracer('t');
    const sdk = new TraceIdRatioBasedSampler(0.5);
    let agreed = 0;
    for (let i = 0; i < 200; i++) {
      const span = tracer.startSpan('POST', {}, ROOT_CONTEXT).spanContext();
      const ours = span.traceFlags === TraceFlags.SAMPLED;
      const theirs =
        sdk.shouldSample(ROOT_CONTEXT, span.traceId).decision === SamplingDecision.RECORD_AND_SAMPLED;
      if (ours === theirs) agreed++;
    }
    assert.equal(agreed, 200);
  });

  it('records every span when exporting, also under an edge that marked its trace not sampled', () => {
    assert.equal(decide({}, TraceFlags.SAMPLED), SamplingDecision.RECORD_AND_SAMPLED);
    assert.equal(decide({}, TraceFlags.NONE), SamplingDecision.RECORD_AND_SAMPLED);
  });

  it('leaves a sampler the operator named as the specification says', () => {
    const env = { OTEL_TRACES_SAMPLER: 'parentbased_always_on' };
    assert.equal(decide(env, TraceFlags.NONE), SamplingDecision.NOT_RECORD);
    assert.equal(decide(env, TraceFlags.SAMPLED), SamplingDecision.RECORD_AND_SAMPLED);
  });

  it('still gives every step a trace id and a span id, which its log lines carry', () => {
    assert.equal(tracing.exporter, 'none');
    const { logger: log, lines } = capturedLog({
      ...loggerOptions('dbupdate-test', 'info'),
      transport: undefined,
    });
    const open = startStep(log, 'sync.request', { device: 'aa:bb:cc:dd:ee:ff' });
    open.finish();
    assert.equal(open.span.isRecording(), false);
    const { traceId, spanId } = open.span.spanContext();
    assert.match(traceId, /^[0-9a-f]{32}$/);
    assert.notEqual(traceId, '0'.repeat(32));
    assert.deepEqual(
      lines.map((l) => [l.event, l.traceId, l.spanId]),
      [
        ['sync.request.start', traceId, spanId],
        ['sync.request.finish', traceId, spanId],
      ],
    );
  });
});
