/**
 * OpenTelemetry tracing for both services. Spans are always made (so every log line of a
 * step carries a trace id, and the edge's trace context reaches Central in a W3C
 * `traceparent` header); they are recorded and exported only when the standard OTEL_*
 * variables ask for it, and only then is the SDK loaded (`tracing-sdk.ts`). Without it,
 * the ids are made by `trace-ids.ts` and the traceparent is carried by this file: read by
 * `carryTraceContext` on our servers, written by `traceHeaders` on the edge's requests.
 * `startTracing` must run before `pg`, `fastify` or `undici` are loaded, because the SDK's
 * instrumentations hook the module loader: the CLI entry point calls it first and imports
 * everything else afterwards.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { ROOT_CONTEXT, SpanKind, context, propagation, trace, type Context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import { IdTracerProvider } from './trace-ids.ts';
import { exporterName, isUntraced, samplerName, samplerRatio, type Tracing } from './trace-settings.ts';

export type { Tracing } from './trace-settings.ts';

export interface TracingOptions {
  serviceName: string;
  env?: NodeJS.ProcessEnv;
  /** Tests pass an in-memory exporter; spans are then exported one by one, at once. */
  exporter?: SpanExporter;
}

let current: Tracing | undefined;
/** Whether this file carries the traceparent (no SDK, so no HTTP instrumentation does). */
let carrying = false;

const noExport = (exporter: string): Tracing => ({
  exporter,
  forceFlush: async () => {},
  shutdown: async () => {},
});

/** Sets up tracing once per process; later calls return the first setup. */
export async function startTracing(options: TracingOptions): Promise<Tracing> {
  if (current) return current;
  const env = options.env ?? process.env;
  if (env.OTEL_SDK_DISABLED === 'true') return (current = noExport('disabled'));
  const sampler = samplerName(env);
  const name = exporterName(env);
  const exporter = options.exporter
    ? { name: 'memory' as const, spans: options.exporter }
    : name === 'none'
      ? undefined
      : { name };
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  if (exporter === undefined) {
    trace.setGlobalTracerProvider(new IdTracerProvider(sampler, samplerRatio(env)));
    carrying = true;
    return (current = noExport('none'));
  }
  const { startSdk } = await import('./tracing-sdk.ts');
  return (current = await startSdk({ serviceName: options.serviceName, env, exporter }));
}

/**
 * Runs each request a server takes in a server span of its own, under the context its
 * `traceparent` names (what the HTTP instrumentation does when the SDK is loaded), with the
 * request's and response's listeners bound to it, so the body's events run in it too: every
 * line logged for the request carries a trace id, also when the caller sent none.
 */
export function carryTraceContext(server: Server): void {
  if (!carrying) return;
  const emit = server.emit;
  const tracer = trace.getTracer('dbupdate-http');
  server.emit = function (this: Server, event: string | symbol, ...args: unknown[]): boolean {
    const [req, res] = args as [IncomingMessage, ServerResponse];
    if (event !== 'request' || isUntraced(req)) return Reflect.apply(emit, this, [event, ...args]) as boolean;
    const parent = propagation.extract(ROOT_CONTEXT, req.headers);
    const span = tracer.startSpan(req.method ?? 'HTTP', { kind: SpanKind.SERVER }, parent);
    const ctx = trace.setSpan(parent, span);
    context.bind(ctx, req);
    context.bind(ctx, res);
    return context.with(ctx, () => Reflect.apply(emit, this, [event, ...args]) as boolean);
  } as Server['emit'];
}

/** The `traceparent` of an outgoing request, when no HTTP instrumentation adds it. */
export function traceHeaders(): Record<string, string> {
  const headers: Record<string, string> = {};
  if (carrying) propagation.inject(context.active(), headers);
  return headers;
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
