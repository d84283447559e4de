/**
 * Requests turned away for load (429 RATE_LIMITED, 503 OVERLOADED) are counted, not logged one
 * by one: in a storm they are most requests, and a line each wrote 518 MiB of logs in ten
 * minutes at LOG_LEVEL=warn. One warning per interval gives the counts by code; the last
 * interval's is written when the service closes.
 */
import type { Logger } from './logger.ts';

export const SHED_CODES = new Set(['RATE_LIMITED', 'OVERLOADED']);

export class ShedLog {
  readonly #log: Logger;
  readonly #intervalMs: number;
  #counts = new Map<string, number>();
  #since = Date.now();
  readonly #timer: NodeJS.Timeout;

  constructor(log: Logger, intervalMs = 10_000) {
    this.#log = log;
    this.#intervalMs = intervalMs;
    this.#timer = setInterval(() => this.flush(), intervalMs);
    this.#timer.unref();
  }

  count(code: string): void {
    this.#counts.set(code, (this.#counts.get(code) ?? 0) + 1);
  }

  flush(): void {
    if (this.#counts.size === 0) {
      this.#since = Date.now();
      return;
    }
    const counts = Object.fromEntries(this.#counts);
    const seconds = Math.round((Date.now() - this.#since) / 1000);
    const total = [...this.#counts.values()].reduce((a, b) => a + b, 0);
    this.#log.warn(
      { event: 'load.shed', counts, seconds, intervalMs: this.#intervalMs },
      `turned ${total} request(s) away for load in the last ${seconds} s`,
    );
    this.#counts = new Map();
    this.#since = Date.now();
  }

  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}
