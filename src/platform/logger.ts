/**
 * pino, JSON lines by default and readable on a terminal. Credentials are redacted
 * wherever they may appear; the redaction list is the one place that knows them.
 */
import { trace } from '@opentelemetry/api';
import { pino, type LoggerOptions } from 'pino';
import { createRequire } from 'node:module';
import type PinoPretty from 'pino-pretty';
import { SeqSink } from './seq.ts';
import type { FastifyBaseLogger } from 'fastify';

export type Logger = FastifyBaseLogger;

export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'token',
  '*.token',
  'password',
  '*.password',
  'databaseUrl',
  '*.databaseUrl',
];

/** How a terminal shows the lines (pino-pretty's options). */
const PRETTY = { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' };

export function loggerOptions(service: string, level: string): LoggerOptions {
  const options: LoggerOptions = {
    level,
    base: { service },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Every line written inside a span names its trace, so logs and traces join up.
    mixin: traceFields,
  };
  if (process.stdout.isTTY && process.env.LOG_FORMAT !== 'json') {
    options.transport = { target: 'pino-pretty', options: PRETTY };
  }
  return options;
}

function traceFields(): Record<string, string> {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { traceId, spanId };
}

/** The log-shipping settings, as both services' configurations name them. */
export interface LogShipping {
  SEQ_URL?: string | undefined;
  SEQ_API_KEY?: string | undefined;
}

/** The service logger: stdout always, and Seq as well when SEQ_URL is set. */
export function createLogger(service: string, level: string, shipping: LogShipping = {}): Logger {
  const options = loggerOptions(service, level);
  if (!shipping.SEQ_URL) return pino(options);
  const pretty = options.transport !== undefined;
  delete options.transport;
  const console = pretty
    ? // Loaded only for a terminal: services in containers never pay for it.
      (createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty)(PRETTY)
    : pino.destination(1);
  const seq = new SeqSink({ url: shipping.SEQ_URL, apiKey: shipping.SEQ_API_KEY });
  return pino(
    options,
    pino.multistream([
      { level: level as pino.Level, stream: console },
      { level: level as pino.Level, stream: seq },
    ]),
  );
}
