/** A logger whose JSON lines a test reads back, one parsed object per line. */
import { Writable } from 'node:stream';
import pino from 'pino';

export function capturedLog<T = Record<string, unknown>>(
  options: pino.LoggerOptions = { level: 'info' },
): { logger: pino.Logger; lines: T[] } {
  const lines: T[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as T);
      done();
    },
  });
  return { logger: pino(options, sink), lines };
}
