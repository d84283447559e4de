/**
 * pino, JSON lines by default and readable on a terminal. Credentials are redacted
 * wherever they may appear; the redaction list is the one place that knows them.
 */
import { pino, type LoggerOptions } from 'pino';
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

export function loggerOptions(service: string, level: string): LoggerOptions {
  const options: LoggerOptions = {
    level,
    base: { service },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (process.stdout.isTTY && process.env.LOG_FORMAT !== 'json') {
    options.transport = {
      target: 'pino-pretty',
      options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' },
    };
  }
  return options;
}

export function createLogger(service: string, level: string): Logger {
  return pino(loggerOptions(service, level));
}
