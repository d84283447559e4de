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
// One line per event: a sync is read as a list of steps, not as pages of indented fields.
const PRETTY = {
  translateTime: 'SYS:HH:MM:ss.l',
  ignore: 'pid,hostname,service,traceId,spanId',
  singleLine: true,
};

export type LogFormat = 'auto' | 'json' | 'pretty';

/** Where log lines go: stdout for services; stderr for a command whose stdout is its result. */
export type LogDestination = 1 | 2;

function isPretty(format: LogFormat, destination: LogDestination): boolean {
  const stream = destination === 1 ? process.stdout : process.stderr;
  return format === 'pretty' || (format === 'auto' && stream.isTTY === true);
}

export function loggerOptions(
  service: string,
  level: string,
  format: LogFormat = 'auto',
  destination: LogDestination = 1,
): LoggerOptions {
  const options: LoggerOptions = {
    level,
    base: { service },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Every line written inside a span names its trace, so logs and traces join up.
    mixin: traceFields,
  };
  if (isPretty(format, destination)) {
    options.transport = { target: 'pino-pretty', options: { ...PRETTY, destination } };
  }
  return options;
}

function traceFields(): Record<string, string> {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { traceId, spanId };
}

/** The log settings, as the configurations name them. */
export interface LogSettings {
  LOG_FORMAT?: LogFormat | undefined;
  SEQ_URL?: string | undefined;
  SEQ_API_KEY?: string | undefined;
}

/** The service logger: stdout (or stderr) always, and Seq as well when SEQ_URL is set. */
export function createLogger(
  service: string,
  level: string,
  settings: LogSettings = {},
  destination: LogDestination = 1,
): Logger {
  const options = loggerOptions(service, level, settings.LOG_FORMAT, destination);
  if (!settings.SEQ_URL)
    return options.transport || destination === 1 ? pino(options) : pino(options, pino.destination(2));
  const pretty = options.transport !== undefined;
  delete options.transport;
  const console = pretty
    ? // Loaded only for a terminal: services in containers never pay for it.
      (createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty)({ ...PRETTY, destination })
    : pino.destination(destination);
  const seq = new SeqSink({ url: settings.SEQ_URL, apiKey: settings.SEQ_API_KEY });
  return pino(
    options,
    pino.multistream([
      { level: level as pino.Level, stream: console },
      { level: level as pino.Level, stream: seq },
    ]),
  );
}
