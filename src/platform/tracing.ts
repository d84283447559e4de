/**
 * OpenTelemetry tracing for both services. Spans are always made (so every log line
 * of a step carries a trace id, and the edge's trace context reaches Central in a W3C
 * `traceparent` header); they are recorded and exported only when the standard OTEL_*
 * variables ask for it. `startTracing` must run before `pg`, `fastify` or `undici` are loaded,
 * because their instrumentations hook the module loader: the CLI entry point calls it
 * first and imports everything else afterwards.
 */
import { context, propagation, trace, type Context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
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

export interface Tracing {
  /** Where spans go: 'otlp', 'console', 'memory' (tests) or 'none'. */
  readonly exporter: string;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  serviceName: string;
  env?: NodeJS.ProcessEnv;
  /** Tests pass an in-memory exporter; spans are then exported one by one, at once. */
  exporter?: SpanExporter;
}

/** Probes and scrapes would drown the traces that matter. */
const UNTRACED_PATHS = new Set(['/metrics', '/healthz', '/readyz', '/livez']);

let current: Tracing | undefined;

/**
 * With no OTEL_TRACES_SAMPLER: when nothing exports, no span is recorded. Each still gets its
 * ids, so log lines carry a trace id and the traceparent goes on; only the attributes,
 * events and timings nobody would read are skipped (a tenth of Central's CPU under a fleet's
 * load, docs/scaling.md). When spans are exported, every one is, also under an edge that
 * exports nothing (its traceparent says "not sampled"): Central still records its part.
 */
function defaultSampler(exporting: boolean): Sampler {
  if (!exporting) return new AlwaysOffSampler();
  return new ParentBasedSampler({
    root: new AlwaysOnSampler(),
    remoteParentNotSampled: new AlwaysOnSampler(),
  });
}

export function samplerFromEnv(env: NodeJS.ProcessEnv, exporting: boolean): Sampler {
  if (!env.OTEL_TRACES_SAMPLER?.trim()) return defaultSampler(exporting);
  const name = env.OTEL_TRACES_SAMPLER.trim().toLowerCase();
  const ratio = Number(env.OTEL_TRACES_SAMPLER_ARG ?? '1');
  const ratioSampler = () =>
    new TraceIdRatioBasedSampler(Number.isFinite(ratio) ? Math.min(Math.max(ratio, 0), 1) : 1);
  switch (name) {
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
    default:
      throw new AppError(
        'CONFIG_INVALID',
        `OTEL_TRACES_SAMPLER: unsupported sampler ${JSON.stringify(name)}`,
      );
  }
}

/** The exporter the OTEL_* variables ask for; none unless an endpoint or exporter is named. */
async function exporterFromEnv(env: NodeJS.ProcessEnv): Promise<{ name: string; processor?: SpanProcessor }> {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const name = (env.OTEL_TRACES_EXPORTER ?? (endpoint ? 'otlp' : 'none')).trim().toLowerCase();
  if (name === 'none') return { name };
  if (name === 'console')
    return { name, processor: new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() }) };
  if (name !== 'otlp')
    throw new AppError(
      'CONFIG_INVALID',
      `OTEL_TRACES_EXPORTER: unsupported exporter ${JSON.stringify(name)}`,
    );
  const protocol =
    env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
  if (protocol !== 'http/protobuf')
    throw new AppError(
      'CONFIG_INVALID',
      `OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf is supported, not ${protocol}`,
    );
  // The exporter reads the endpoint, headers, timeout and compression from OTEL_EXPORTER_OTLP_*;
  // the batch processor bounds its queue, so a dead collector costs dropped spans, not memory.
  // Loaded only when exporting: it weighs ~5 MB, which an edge without a collector need not carry.
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-proto');
  return { name, processor: new BatchSpanProcessor({ exporter: new OTLPTraceExporter() }) };
}

/**
 * Query spans, loaded only when spans are exported: otherwise every span is unrecorded and
 * wrapping each query would cost both services CPU (and the edge's CLI about 30 ms of start) for nothing.
 */
async function pgInstrumentation(): Promise<Instrumentation> {
  const { PgInstrumentation } = await import('@opentelemetry/instrumentation-pg');
  // Query text only, never parameter values (MACs, credential hashes).
  return new PgInstrumentation({
    requireParentSpan: true,
    enhancedDatabaseReporting: false,
    // A span per pool checkout re-parses the connection string each time (a few per cent
    // of Central's CPU under load) and says nothing the query spans do not.
    ignoreConnectSpans: true,
  });
}

/** Sets up tracing once per process; later calls return the first setup. */
export async function startTracing(options: TracingOptions): Promise<Tracing> {
  if (current) return current;
  const env = options.env ?? process.env;
  if (env.OTEL_SDK_DISABLED === 'true') {
    current = { exporter: 'disabled', forceFlush: async () => {}, shutdown: async () => {} };
    return current;
  }
  const chosen = options.exporter
    ? { name: 'memory', processor: new SimpleSpanProcessor({ exporter: options.exporter }) }
    : await exporterFromEnv(env);
  const resource = resourceFromAttributes({ 'service.name': options.serviceName }).merge(
    detectResources({ detectors: [envDetector] }),
  );
  const provider = new TracerProvider({
    resource,
    sampler: samplerFromEnv(env, chosen.processor !== undefined),
    spanProcessors: chosen.processor ? [chosen.processor] : [],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      // These two carry the trace id across HTTP (in and out) even when nothing is exported,
      // so both services' log lines of one sync share it.
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => UNTRACED_PATHS.has((req.url ?? '').split('?')[0]!),
      }),
      new UndiciInstrumentation(),
      ...(chosen.processor ? [await pgInstrumentation()] : []),
    ],
  });
  current = {
    exporter: chosen.name,
    forceFlush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
  return current;
}

/**
 * Flushes and stops the exporter, if tracing was started (a no-op otherwise); gives up after
 * `boundMs`, as an exporter retries an absent collector for longer.
 */
export async function shutdownTracing(boundMs = 5_000): Promise<void> {
  if (!current) return;
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, boundMs)));
  await Promise.race([current.shutdown().catch(() => undefined), bound]);
  clearTimeout(timer);
}

/** The service name for a CLI invocation (OTEL_SERVICE_NAME overrides it through the resource). */
export function serviceNameFor(group: string | undefined): string {
  if (group === 'central') return 'central-db-update-api';
  if (group === 'edge') return 'dbupdate-service';
  return 'dbupdate';
}

/**
 * Runs each step of an iterable in `ctx`. Streams pull their source from socket
 * callbacks, where the request's context is gone; this keeps database spans made while
 * streaming under the span that started the stream.
 */
export function iterateInContext<T>(ctx: Context, source: AsyncIterable<T>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      return {
        next: () => context.with(ctx, () => it.next()),
        return: (value?: unknown) =>
          context.with(ctx, () => it.return?.(value) ?? Promise.resolve({ done: true, value: undefined })),
        throw: (err?: unknown) => context.with(ctx, () => it.throw?.(err) ?? Promise.reject(err)),
      } as AsyncIterator<T>;
    },
  };
}
