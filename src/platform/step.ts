/**
 * The step model: every unit of work logs a start and a finish event (with outcome
 * and duration, on success and on error) under one name, and is one span of the same
 * name, so a sync can be followed step by step in any log viewer and in a trace.
 * The log lines are written inside the span, so they carry its trace id.
 */
import { SpanStatusCode, context, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';
import type { Logger } from './logger.ts';
import { SHED_CODES } from './shed-log.ts';

const tracer = trace.getTracer('dbupdate');

/** Fields that become span attributes (as `dbupdate.<name>`), from the call and the logger's bindings. */
const SPAN_FIELDS = new Set([
  'manifestId',
  'device',
  'deviceId',
  'syncId',
  'trigger',
  'table',
  'rows',
  'cache',
  'rowsIncluded',
]);

function copyAttributes(source: Record<string, unknown>, into: Attributes): Attributes {
  for (const [key, value] of Object.entries(source)) {
    if (!SPAN_FIELDS.has(key)) continue;
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
      into[`dbupdate.${key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`] = value;
  }
  return into;
}

/**
 * A logger's bindings never change, and pino rebuilds them by parsing JSON on every
 * `bindings()` call: kept per logger, as span attributes (several steps share a logger).
 */
const boundAttributes = new WeakMap<Logger, Attributes>();

function attributesOf(log: Logger, fields: Record<string, unknown>): Attributes {
  let bound = boundAttributes.get(log);
  if (!bound) {
    const bindings = (log as { bindings?: () => Record<string, unknown> }).bindings?.() ?? {};
    bound = copyAttributes(bindings, {});
    boundAttributes.set(log, bound);
  }
  return copyAttributes(fields, { ...bound });
}

export interface OpenStep {
  /** The context of this step's span: work done under it becomes its children. */
  readonly context: Context;
  readonly span: Span;
  /** Adds fields to the finish event (and span attributes for the known ones). */
  annotate(fields: Record<string, unknown>): void;
  finish(err?: unknown): void;
}

/**
 * A step whose start and finish happen in different places (a response that streams
 * after the handler returned). `finish` is idempotent.
 */
export function startStep(log: Logger, name: string, fields: Record<string, unknown> = {}): OpenStep {
  const started = performance.now();
  const span = tracer.startSpan(name);
  // Attributes cost only when someone will read them (see platform/tracing.ts).
  const recording = span.isRecording();
  if (recording) span.setAttributes(attributesOf(log, fields));
  const ctx = trace.setSpan(context.active(), span);
  const extra: Record<string, unknown> = { ...fields };
  // The message names the table too, so a reader of plain lines sees which one is loading.
  const label = typeof fields.table === 'string' ? `${name} ${fields.table}` : name;
  context.with(ctx, () => log.info({ ...fields, event: `${name}.start` }, `${label} started`));
  let finished = false;
  return {
    context: ctx,
    span,
    annotate(more) {
      Object.assign(extra, more);
      if (recording) span.setAttributes(attributesOf(log, more));
    },
    finish(err) {
      if (finished) return;
      finished = true;
      const durationMs = Math.round(performance.now() - started);
      context.with(ctx, () => {
        if (err === undefined) {
          log.info(
            { ...extra, event: `${name}.finish`, outcome: 'success', durationMs },
            `${label} finished`,
          );
          span.setStatus({ code: SpanStatusCode.OK });
        } else {
          const code = (err as { code?: unknown }).code;
          // Load shed is summed up by ShedLog, not a warning per step of every request turned away.
          log[typeof code === 'string' && SHED_CODES.has(code) ? 'debug' : 'warn'](
            { ...extra, event: `${name}.finish`, outcome: 'error', durationMs, code, err },
            `${label} failed`,
          );
          span.recordException(err as Error);
          span.setStatus({ code: SpanStatusCode.ERROR, message: String(code ?? (err as Error).message) });
          if (typeof code === 'string') span.setAttribute('dbupdate.error_code', code);
        }
      });
      span.end();
    },
  };
}

export async function step<T>(
  log: Logger,
  name: string,
  fields: Record<string, unknown>,
  work: (open: OpenStep) => Promise<T>,
): Promise<T> {
  const open = startStep(log, name, fields);
  try {
    const result = await context.with(open.context, () => work(open));
    open.finish();
    return result;
  } catch (err) {
    open.finish(err);
    throw err;
  }
}
