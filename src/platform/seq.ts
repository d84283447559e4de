/**
 * A pino destination that ships log events to Seq as CLEF over HTTP (`/ingest/clef`),
 * in batches, from a bounded buffer. Logging never waits on Seq: a write only queues
 * the event; when the buffer is full the oldest events are dropped and counted; a slow
 * or dead Seq costs retries with backoff, never memory or a blocked event loop.
 * (seq-logging/pino-seq were considered: they buffer without bound, count no drops and
 * speak the older raw format.)
 */
import { Writable } from 'node:stream';
import { context } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';

export interface SeqSinkOptions {
  url: string;
  apiKey?: string | undefined;
  /** Events held while Seq is slow or away; older ones are dropped beyond this. */
  maxBufferedEvents?: number;
  maxBatchEvents?: number;
  flushIntervalMs?: number;
  requestTimeoutMs?: number;
  maxBackoffMs?: number;
}

export interface SeqSinkStats {
  sent: number;
  dropped: number;
  failedRequests: number;
  buffered: number;
}

const LEVELS: Record<number, string> = {
  10: 'Verbose',
  20: 'Debug',
  30: 'Information',
  40: 'Warning',
  50: 'Error',
  60: 'Fatal',
};
const OMITTED = new Set(['time', 'level', 'msg', 'err', 'traceId', 'spanId', 'pid']);

/** One pino JSON line as one CLEF line (https://clef-json.org). */
export function toClef(line: string): string | undefined {
  let event: Record<string, unknown>;
  try {
    event = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const clef: Record<string, unknown> = {
    '@t':
      typeof event.time === 'string' ? event.time : new Date(Number(event.time) || Date.now()).toISOString(),
    '@m': typeof event.msg === 'string' ? event.msg : '',
    '@l': LEVELS[Number(event.level)] ?? 'Information',
  };
  const err = event.err as { stack?: string; message?: string } | undefined;
  if (err) clef['@x'] = err.stack ?? err.message ?? String(err);
  if (typeof event.traceId === 'string') clef['@tr'] = event.traceId;
  if (typeof event.spanId === 'string') clef['@sp'] = event.spanId;
  for (const [key, value] of Object.entries(event)) {
    if (OMITTED.has(key)) continue;
    clef[key.startsWith('@') ? `@${key}` : key] = value;
  }
  return JSON.stringify(clef);
}

const sinks = new Set<SeqSink>();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Totals over every sink in this process, for the metrics endpoints. */
export function seqStats(): SeqSinkStats {
  const total: SeqSinkStats = { sent: 0, dropped: 0, failedRequests: 0, buffered: 0 };
  for (const sink of sinks) {
    const s = sink.stats;
    total.sent += s.sent;
    total.dropped += s.dropped;
    total.failedRequests += s.failedRequests;
    total.buffered += s.buffered;
  }
  return total;
}

/** Sends what is buffered, waiting at most `deadlineMs`; used at shutdown. */
export async function closeSeqSinks(deadlineMs = 3000): Promise<void> {
  await Promise.all([...sinks].map((sink) => sink.close(deadlineMs)));
}

/**
 * Oldest-first events with O(1) removal at the front: while Seq is away every new log
 * line drops the oldest one, and that must not cost a shift of the whole buffer.
 */
class EventQueue {
  #items: string[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: string): void {
    this.#items.push(item);
  }

  /** Removes and returns up to `n` of the oldest events. */
  take(n: number): string[] {
    const taken = this.#items.slice(this.#head, this.#head + n);
    this.drop(taken.length);
    return taken;
  }

  drop(n: number): void {
    this.#head += n;
    // Reclaim the dead front now and then, so memory follows the live events.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Puts events back in front of the queue (a batch that could not be sent). */
  unshift(items: string[]): void {
    this.#items = items.concat(this.#items.slice(this.#head));
    this.#head = 0;
  }
}

export class SeqSink extends Writable {
  readonly #endpoint: URL;
  readonly #headers: Record<string, string>;
  readonly #opts: Required<Omit<SeqSinkOptions, 'apiKey' | 'url'>>;
  readonly #buffer = new EventQueue();
  #partial = '';
  #sending: Promise<void> | undefined;
  #backoffMs = 0;
  #retryAt = 0;
  #timer: NodeJS.Timeout;
  readonly #counts = { sent: 0, dropped: 0, failedRequests: 0 };

  constructor(options: SeqSinkOptions) {
    super({ decodeStrings: false });
    this.#endpoint = new URL('ingest/clef', options.url.endsWith('/') ? options.url : `${options.url}/`);
    this.#headers = {
      'content-type': 'application/vnd.serilog.clef',
      ...(options.apiKey ? { 'x-seq-apikey': options.apiKey } : {}),
    };
    this.#opts = {
      maxBufferedEvents: options.maxBufferedEvents ?? 10_000,
      maxBatchEvents: options.maxBatchEvents ?? 500,
      flushIntervalMs: options.flushIntervalMs ?? 1000,
      requestTimeoutMs: options.requestTimeoutMs ?? 5000,
      maxBackoffMs: options.maxBackoffMs ?? 30_000,
    };
    this.#timer = setInterval(() => void this.#flush(), this.#opts.flushIntervalMs).unref();
    sinks.add(this);
  }

  get stats(): SeqSinkStats {
    return { ...this.#counts, buffered: this.#buffer.length };
  }

  override _write(chunk: string | Buffer, _encoding: BufferEncoding, done: (err?: Error) => void): void {
    const text = this.#partial + chunk.toString();
    const lines = text.split('\n');
    this.#partial = lines.pop() ?? '';
    for (const line of lines) {
      const clef = line && toClef(line);
      if (clef) this.#enqueue(clef);
    }
    if (this.#buffer.length >= this.#opts.maxBatchEvents) void this.#flush();
    done();
  }

  #enqueue(clef: string): void {
    this.#buffer.push(clef);
    const excess = this.#buffer.length - this.#opts.maxBufferedEvents;
    if (excess > 0) {
      this.#buffer.drop(excess);
      this.#counts.dropped += excess;
    }
  }

  #flush(): Promise<void> {
    if (this.#sending) return this.#sending;
    if (this.#buffer.length === 0 || Date.now() < this.#retryAt) return Promise.resolve();
    this.#sending = this.#send().finally(() => (this.#sending = undefined));
    return this.#sending;
  }

  async #send(): Promise<void> {
    const batch = this.#buffer.take(this.#opts.maxBatchEvents);
    try {
      // The sink's own requests must not become spans (or logs): that would feed itself.
      const res = await context.with(suppressTracing(context.active()), () =>
        fetch(this.#endpoint, {
          method: 'POST',
          headers: this.#headers,
          body: batch.join('\n') + '\n',
          signal: AbortSignal.timeout(this.#opts.requestTimeoutMs),
        }),
      );
      await res.body?.cancel();
      if (res.ok) {
        this.#counts.sent += batch.length;
        this.#backoffMs = 0;
        return;
      }
      // Seq refused the events themselves: sending them again would fail again.
      if (res.status === 400 || res.status === 413) {
        this.#counts.dropped += batch.length;
        this.#counts.failedRequests++;
        return;
      }
      throw new Error(`Seq answered ${res.status}`);
    } catch {
      this.#counts.failedRequests++;
      const room = this.#opts.maxBufferedEvents - this.#buffer.length;
      const kept = batch.slice(Math.max(0, batch.length - room));
      this.#counts.dropped += batch.length - kept.length;
      this.#buffer.unshift(kept);
      this.#backoffMs = Math.min(this.#opts.maxBackoffMs, Math.max(500, this.#backoffMs * 2));
      this.#retryAt = Date.now() + this.#backoffMs;
    }
  }

  /** Stops the timer and sends what is left, for at most `deadlineMs`. */
  async close(deadlineMs: number): Promise<void> {
    clearInterval(this.#timer);
    sinks.delete(this);
    const deadline = Date.now() + deadlineMs;
    this.#retryAt = 0;
    while ((this.#buffer.length > 0 || this.#sending) && Date.now() < deadline) {
      const failedBefore = this.#counts.failedRequests;
      await Promise.race([this.#flush(), sleep(deadline - Date.now())]);
      // A Seq that refused or is not there would take the whole deadline: one try is enough.
      if (this.#counts.failedRequests > failedBefore) return;
      this.#retryAt = 0;
    }
  }
}
