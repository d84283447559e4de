/**
 * Edge → Central over HTTP, with cockatiel policies: a per-attempt timeout, retries
 * with exponential backoff and jitter (honouring Retry-After), and a circuit breaker
 * so a fleet stops hammering a Central that is down. Retries cover getting the
 * response headers; a body that fails midway fails the sync (the next one retries).
 */
import {
  CircuitState,
  ConsecutiveBreaker,
  ExponentialBackoff,
  TimeoutStrategy,
  circuitBreaker,
  halfJitterGenerator,
  handleWhen,
  retry,
  timeout,
  wrap,
  type IBackoff,
  type IBackoffFactory,
  type IRetryBackoffContext,
} from 'cockatiel';
import {
  PIECES_MEDIA_TYPE,
  SCHEMA_VERSION_HEADER,
  SNAPSHOT_MEDIA_TYPE,
  SOFTWARE_VERSION_HEADER,
  type AckBody,
  type AckResponse,
  type PiecesRequestBody,
  type SyncRequestBody,
} from '../../contract/wire.ts';
import type { Agent } from 'undici';
import { AppError } from '../../platform/errors.ts';
import { SOFTWARE_VERSION } from '../../platform/version.ts';
import { traceHeaders } from '../../platform/tracing.ts';
import { HttpStatusError, isRetryable, toClientError } from './client-errors.ts';
import { SyncError } from './errors.ts';
import type { RateCap } from './rate-cap.ts';

/**
 * The headers of every call an edge makes to Central (the fleet bench sends the same, so
 * that Central answers it as it answers a real edge: zstd, the edge's model version).
 */
export function edgeRequestHeaders(
  accept: string,
  schemaVersion: number,
  token: string | undefined,
): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept,
    'accept-encoding': 'zstd, gzip, deflate',
    [SCHEMA_VERSION_HEADER]: String(schemaVersion),
    [SOFTWARE_VERSION_HEADER]: SOFTWARE_VERSION,
    ...(token ? { authorization: `Bearer ${token}` } : {}),
  };
}

export interface CentralClientOptions {
  baseUrl: string;
  token: string | undefined;
  retryAttempts: number;
  attemptTimeoutMs: number;
  stallTimeoutMs: number;
  /** Smallest backoff delay; tests shorten it. */
  initialDelayMs?: number;
  /** PEM CA certificates: Central's certificate must chain to one of these, not to the system's. */
  ca?: Buffer;
  /** Where `ca` was read from (CENTRAL_CA_FILE), for messages. */
  caFile?: string | undefined;
  /** The data-model version this edge's tables are at, told to Central with every request. */
  schemaVersion: number;
  /** DOWNLOAD_RATE_KBPS: answers are read no faster than this (rate-cap.ts). */
  rateCap?: RateCap | undefined;
}

/** Exponential backoff with jitter, stretched to the server's Retry-After when it gives one. */
class RetryAfterBackoff implements IBackoffFactory<IRetryBackoffContext<unknown>> {
  readonly #inner: IBackoffFactory<unknown>;
  constructor(inner: IBackoffFactory<unknown>) {
    this.#inner = inner;
  }
  next(context: IRetryBackoffContext<unknown>): IBackoff<IRetryBackoffContext<unknown>> {
    const base = this.#inner.next(context);
    const err = 'error' in context.result ? context.result.error : undefined;
    const wanted = err instanceof HttpStatusError ? (err.retryAfterMs ?? 0) : 0;
    return { duration: Math.max(base.duration, wanted), next: (c) => new RetryAfterBackoff(base).next(c) };
  }
}

/**
 * How long the circuit stays open before one try decides: 1–2 s the first time, since a
 * Central that restarts (a deploy, a killed container) is back within seconds, then doubled
 * by each failed try up to 15–30 s, so a fleet stops hammering a Central that stays down.
 */
const HALF_OPEN_AFTER = { initialDelay: 2_000, maxDelay: 30_000, generator: halfJitterGenerator };

/** A backoff that tells `seen` each duration it gives. */
function noting<C>(backoff: IBackoff<C>, seen: (ms: number) => void): IBackoff<C> {
  seen(backoff.duration);
  return { duration: backoff.duration, next: (c) => noting(backoff.next(c), seen) };
}

export class CentralClient {
  readonly #opts: CentralClientOptions;
  /** When the breaker lets a call through again (epoch ms), while it is open. */
  #retryAt = 0;
  readonly #breaker = circuitBreaker(handleWhen(isRetryable), {
    halfOpenAfter: {
      next: () =>
        noting(new ExponentialBackoff(HALF_OPEN_AFTER).next(), (ms) => (this.#retryAt = Date.now() + ms)),
    },
    breaker: new ConsecutiveBreaker(5),
  });
  readonly #policy;
  /**
   * A connection pool that trusts only the pinned CA; undefined: the system's CAs. undici is
   * loaded only then: it costs every edge start about 100 ms, for a setting most never use.
   */
  readonly #dispatcher: Promise<Agent | undefined>;

  constructor(opts: CentralClientOptions) {
    this.#opts = opts;
    const { ca, rateCap } = opts;
    this.#dispatcher =
      ca || rateCap
        ? import('undici').then(({ Agent }) => {
            const agent = new Agent(ca ? { connect: { ca } } : {});
            return rateCap ? (agent.compose(rateCap.interceptor) as unknown as Agent) : agent;
          })
        : Promise.resolve(undefined);
    // A failed import surfaces at the first request, not as an unhandled rejection before it.
    this.#dispatcher.catch(() => undefined);
    const backoff = new ExponentialBackoff({ initialDelay: opts.initialDelayMs ?? 500, maxDelay: 30_000 });
    this.#policy = wrap(
      retry(handleWhen(isRetryable), {
        maxAttempts: opts.retryAttempts,
        backoff: new RetryAfterBackoff(backoff),
      }),
      this.#breaker,
      timeout(opts.attemptTimeoutMs, TimeoutStrategy.Aggressive),
    );
  }

  get breakerState(): 'closed' | 'open' | 'half-open' | 'isolated' {
    const names = {
      [CircuitState.Closed]: 'closed',
      [CircuitState.Open]: 'open',
      [CircuitState.HalfOpen]: 'half-open',
      [CircuitState.Isolated]: 'isolated',
    } as const;
    return names[this.#breaker.state];
  }

  async #post(
    path: string,
    body: unknown,
    accept: string,
    extraHeaders: Record<string, string>,
  ): Promise<Response> {
    const dispatcher = await this.#dispatcher;
    try {
      return await this.#policy.execute(async ({ signal }) => {
        // cockatiel aborts its signal once this function returns, but the body is read
        // later: the timeout may only cancel the request until the headers are in.
        const request = new AbortController();
        const onTimeout = () => request.abort(signal.reason);
        signal.addEventListener('abort', onTimeout, { once: true });
        const res = await fetch(endpoint(this.#opts.baseUrl, path), {
          method: 'POST',
          headers: {
            ...edgeRequestHeaders(accept, this.#opts.schemaVersion, this.#opts.token),
            ...extraHeaders,
            ...traceHeaders(),
          },
          body: JSON.stringify(body),
          signal: request.signal,
          ...(dispatcher ? { dispatcher } : {}),
        } as RequestInit).finally(() => signal.removeEventListener('abort', onTimeout));
        if (!res.ok)
          throw new HttpStatusError(
            res.status,
            await res.text().catch(() => ''),
            res.headers.get('retry-after'),
          );
        return res;
      });
    } catch (err) {
      throw toClientError(err, this.#opts, this.#retryAt);
    }
  }

  /** The snapshot stream; the body is watched for stalls and cut when one occurs. */
  requestSnapshot(
    body: SyncRequestBody,
    extraHeaders: Record<string, string> = {},
    /** When the whole transfer must have ended (epoch ms), however steadily bytes trickle in. */
    deadlineAt = Number.POSITIVE_INFINITY,
  ): Promise<AsyncGenerator<Uint8Array>> {
    return this.#stream('/api/device-sync/request', body, SNAPSHOT_MEDIA_TYPE, extraHeaders, deadlineAt);
  }

  /** The pieces stream of a manifest (docs/protocol.md, "Pieces"), watched as the snapshot is. */
  requestPieces(
    body: PiecesRequestBody,
    extraHeaders: Record<string, string> = {},
    deadlineAt = Number.POSITIVE_INFINITY,
  ): Promise<AsyncGenerator<Uint8Array>> {
    return this.#stream('/api/device-sync/pieces', body, PIECES_MEDIA_TYPE, extraHeaders, deadlineAt);
  }

  async #stream(
    path: string,
    body: unknown,
    mediaType: string,
    extraHeaders: Record<string, string>,
    deadlineAt: number,
  ): Promise<AsyncGenerator<Uint8Array>> {
    const res = await this.#post(path, body, mediaType, extraHeaders);
    const type = res.headers.get('content-type') ?? '';
    if (!type.startsWith(mediaType)) {
      await res.body?.cancel();
      throw new AppError('SNAPSHOT_INVALID', `Central answered with content type ${JSON.stringify(type)}`);
    }
    return watchStalls(res.body!, this.#opts.stallTimeoutMs, deadlineAt, this.#opts.rateCap);
  }

  async sendAck(ack: AckBody, extraHeaders: Record<string, string> = {}): Promise<AckResponse> {
    const res = await this.#post('/api/device-sync/ack', ack, 'application/json', extraHeaders);
    return (await res.json()) as AckResponse;
  }
}

/**
 * `path` under the base URL, keeping the base's own path: a Central behind a reverse
 * proxy at https://host/dbupdate is called at https://host/dbupdate/api/….
 */
export function endpoint(baseUrl: string, path: string): URL {
  const url = new URL(baseUrl);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`;
  return url;
}

async function* watchStalls(
  body: ReadableStream<Uint8Array>,
  stallMs: number,
  deadlineAt: number,
  rateCap: RateCap | undefined,
): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  try {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const left = deadlineAt - Date.now();
      const stalled = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              left < stallMs
                ? new AppError('SYNC_DEADLINE', 'the sync ran past its deadline (SYNC_DEADLINE_SECONDS)')
                : new SyncError('SNAPSHOT_INVALID', 'STALLED', `no data from Central for ${stallMs} ms`),
            ),
          Math.max(0, Math.min(stallMs, left)),
        );
      });
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await Promise.race([reader.read(), stalled]);
      } catch (err) {
        if (err instanceof AppError) throw err;
        throw new AppError('TRANSFER_CUT', `the transfer from Central broke: ${(err as Error).message}`, {
          cause: err,
        });
      } finally {
        clearTimeout(timer);
      }
      if (next.done) return;
      yield next.value;
      await rateCap?.settle();
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}
