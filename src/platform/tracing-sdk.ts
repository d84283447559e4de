/**
 * The OpenTelemetry SDK, loaded by `startTracing` only when spans are exported (or a test
 * collects them): the provider, its sampler and processor, and the instrumentations of
 * HTTP (in and out) and PostgreSQL. A service that exports nothing never loads this file:
 * the edge's CLI starts about 150 ms sooner without it (docs/scaling.md, "Memory").
 */
import { trace } from '@opentelemetry/api';
import { registerInstrumentations, type Instrumentation } from '@opentelemetry/instrumentation';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { envDetector, detectResources, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { AppError } from './errors.ts';
import { isUntraced, samplerName, samplerRatio, type Tracing } from './trace-settings.ts';

/**
 * The sampler OTEL_TRACES_SAMPLER names. With none, every span is recorded, also under an
 * edge that exports nothing (its traceparent says "not sampled"): Central still records
 * its part.
 */
export function samplerFromEnv(env: NodeJS.ProcessEnv): Sampler {
  const ratioSampler = () => new TraceIdRatioBasedSampler(samplerRatio(env));
  switch (samplerName(env)) {
    case undefined:
      return new ParentBasedSampler({
        root: new AlwaysOnSampler(),
        remoteParentNotSampled: new AlwaysOnSampler(),
      });
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratioSampler();
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratioSampler() });
  }
}

/** The processor for the exporter the OTEL_* variables name. */
async function processorFor(name: 'console' | 'otlp', env: NodeJS.ProcessEnv): Promise<SpanProcessor> {
  if (name === 'console') return new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() });
  const protocol =
    env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
  if (protocol !== 'http/protobuf')
    throw new AppError(
      'CONFIG_INVALID',
      `OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf is supported, not ${protocol}`,
    );
  // The exporter reads the endpoint, headers, timeout and compression from OTEL_EXPORTER_OTLP_*;
  // the batch processor bounds its queue, so a dead collector costs dropped spans, not memory.
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-proto');
  return new BatchSpanProcessor({ exporter: new OTLPTraceExporter() });
}

/** Query spans: text only, never parameter values (MACs, credential hashes). */
async function pgInstrumentation(): Promise<Instrumentation> {
  const { PgInstrumentation } = await import('@opentelemetry/instrumentation-pg');
  return new PgInstrumentation({
    requireParentSpan: true,
    enhancedDatabaseReporting: false,
    // A span per pool checkout re-parses the connection string each time (a few per cent
    // of Central's CPU under load) and says nothing the query spans do not.
    ignoreConnectSpans: true,
  });
}

export interface SdkOptions {
  serviceName: string;
  env: NodeJS.ProcessEnv;
  exporter: { name: 'console' | 'otlp' } | { name: 'memory'; spans: SpanExporter };
}

/** The provider that records and exports, registered with its instrumentations. */
export async function startSdk({ serviceName, env, exporter }: SdkOptions): Promise<Tracing> {
  const processor =
    exporter.name === 'memory'
      ? new SimpleSpanProcessor({ exporter: exporter.spans })
      : await processorFor(exporter.name, env);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName }).merge(
      detectResources({ detectors: [envDetector] }),
    ),
    sampler: samplerFromEnv(env),
    spanProcessors: [processor],
  });
  trace.setGlobalTracerProvider(provider);
  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: isUntraced,
      }),
      new UndiciInstrumentation(),
      await pgInstrumentation(),
    ],
  });
  return {
    exporter: exporter.name,
    forceFlush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
