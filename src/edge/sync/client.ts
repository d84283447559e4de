/**
 * Edge → Central over HTTP, with cockatiel policies: a per-attempt timeout, retries
 * with exponential backoff and jitter (honouring Retry-After), and a circuit breaker
 * so a fleet stops hammering a Central that is down. Retries cover getting the
 * response headers; a body that fails midway fails the sync (the next one retries).
 */
import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  ExponentialBackoff,
  TaskCancelledError,
  TimeoutStrategy,
  circuitBreaker,
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
}

class HttpStatusError extends Error {
  readonly status: number;
  readonly retryAfterMs: number | undefined;
  readonly body: string;
  constructor(status: number, body: string, retryAfter: string | null) {
    super(`Central answered ${status}: ${body.slice(0, 300)}`);
    this.status = status;
    this.body = body;
    const seconds = retryAfter === null ? NaN : Number(retryAfter);
    this.retryAfterMs = Number.isFinite(seconds) ? Math.min(seconds, 600) * 1000 : undefined;
  }
}

const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);

/** Node's codes for a certificate that does not verify: asking again cannot mend it. */
const CERTIFICATE_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
const certificateCode = (err: unknown): string | undefined => {
  const code = (err as { cause?: { code?: unknown } } | null)?.cause?.code;
  return typeof code === 'string' && CERTIFICATE_CODES.has(code) ? code : undefined;
};

const isRetryable = (err: unknown): boolean =>
  err instanceof HttpStatusError
    ? RETRYABLE_STATUS.has(err.status)
    : !(err instanceof AppError) && certificateCode(err) === undefined;

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

export class CentralClient {
  readonly #opts: CentralClientOptions;
  readonly #breaker = circuitBreaker(handleWhen(isRetryable), {
    halfOpenAfter: HALF_OPEN_AFTER_MS,
    breaker: new ConsecutiveBreaker(5),
  });
  /** When the breaker lets a call through again (epoch ms), while it is open. */
  #retryAt = 0;
  readonly #policy;
  /**
   * A connection pool that trusts only the pinned CA; undefined: the system's CAs. undici is
   * loaded only then: it costs every edge start about 100 ms, for a setting most never use.
   */
  readonly #dispatcher: Promise<Agent | undefined>;

  constructor(opts: CentralClientOptions) {
    this.#opts = opts;
    const ca = opts.ca;
    this.#dispatcher = ca
      ? import('undici').then(({ Agent }) => new Agent({ connect: { ca } }))
      : Promise.resolve(undefined);
    // A failed import surfaces at the first request, not as an unhandled rejection before it.
    this.#dispatcher.catch(() => undefined);
    this.#breaker.onBreak(() => (this.#retryAt = Date.now() + HALF_OPEN_AFTER_MS));
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
    traceHeaders: Record<string, string>,
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
            ...traceHeaders,
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
    traceHeaders: Record<string, string> = {},
    /** When the whole transfer must have ended (epoch ms), however steadily bytes trickle in. */
    deadlineAt = Number.POSITIVE_INFINITY,
  ): Promise<AsyncGenerator<Uint8Array>> {
    return this.#stream('/api/device-sync/request', body, SNAPSHOT_MEDIA_TYPE, traceHeaders, deadlineAt);
  }

  /** The pieces stream of a manifest (docs/protocol.md, "Pieces"), watched as the snapshot is. */
  requestPieces(
    body: PiecesRequestBody,
    traceHeaders: Record<string, string> = {},
    deadlineAt = Number.POSITIVE_INFINITY,
  ): Promise<AsyncGenerator<Uint8Array>> {
    return this.#stream('/api/device-sync/pieces', body, PIECES_MEDIA_TYPE, traceHeaders, deadlineAt);
  }

  async #stream(
    path: string,
    body: unknown,
    mediaType: string,
    traceHeaders: Record<string, string>,
    deadlineAt: number,
  ): Promise<AsyncGenerator<Uint8Array>> {
    const res = await this.#post(path, body, mediaType, traceHeaders);
    const type = res.headers.get('content-type') ?? '';
    if (!type.startsWith(mediaType)) {
      await res.body?.cancel();
      throw new AppError('SNAPSHOT_INVALID', `Central answered with content type ${JSON.stringify(type)}`);
    }
    return watchStalls(res.body!, this.#opts.stallTimeoutMs, deadlineAt);
  }

  async sendAck(ack: AckBody, traceHeaders: Record<string, string> = {}): Promise<AckResponse> {
    const res = await this.#post('/api/device-sync/ack', ack, 'application/json', traceHeaders);
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

/** What to do about a refusal, for the codes a misconfigured device gets. */
const REFUSAL_HINTS: Record<string, string> = {
  UNAUTHENTICATED: 'check DEVICE_TOKEN: it is the line `dbupdate central enroll --mac M` printed',
  DEVICE_NOT_FOUND: 'check DEVICE_MAC, or create the device in Central and enroll it',
  DEVICE_DISABLED: 'the device is disabled in Central',
  SCHEMA_VERSION_UNSUPPORTED: 'this edge and Central run data-model versions too far apart to sync',
  ROUTE_NOT_FOUND: 'check CENTRAL_URL: it is not a Central (or lacks its path prefix)',
};

const HALF_OPEN_AFTER_MS = 30_000;

function toClientError(err: unknown, opts: CentralClientOptions, retryAt: number): AppError {
  const { baseUrl } = opts;
  if (err instanceof AppError) return err;
  if (err instanceof HttpStatusError) {
    let code = '';
    let message = '';
    try {
      const parsed = (JSON.parse(err.body) as { error?: { code?: string; message?: string } }).error;
      code = parsed?.code ?? '';
      message = parsed?.message ?? '';
    } catch {
      /* not our error shape */
    }
    if (err.status >= 500 || RETRYABLE_STATUS.has(err.status)) {
      return new AppError('CENTRAL_UNREACHABLE', `Central answered ${err.status} ${code}`.trim(), {
        cause: err,
      });
    }
    const hint = REFUSAL_HINTS[code] ?? message;
    return new AppError(
      'CENTRAL_REFUSED',
      `Central refused with ${err.status} ${code}${hint ? `: ${hint}` : ''}`,
      {
        cause: err,
        details: { status: err.status, centralCode: code },
      },
    );
  }
  if (err instanceof BrokenCircuitError) {
    const seconds = Math.max(1, Math.ceil((retryAt - Date.now()) / 1000));
    return new AppError(
      'CENTRAL_UNREACHABLE',
      `circuit open: Central failed 5 times in a row; not calling it for ${seconds} s more ` +
        `(until ${new Date(retryAt).toISOString()}), then one try decides`,
      { cause: err, details: { retryAfterSeconds: seconds } },
    );
  }
  if (err instanceof TaskCancelledError)
    return new AppError('CENTRAL_UNREACHABLE', 'Central did not answer in time', { cause: err });
  // fetch says only "fetch failed"; the reason (refused, unknown host, certificate) is its cause.
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = [cause?.code, cause?.message].filter(Boolean).join(' ') || (err as Error).message;
  const certificate = certificateCode(err);
  if (certificate)
    return new AppError(
      'CENTRAL_UNREACHABLE',
      // Node's own advice (--use-system-ca) points away from CENTRAL_CA_FILE, the fix here.
      `Central's certificate at ${new URL(baseUrl).host} is not trusted (${certificate}: ${(cause?.message ?? '').replace(/; if the root CA is installed locally.*$/, '')}): ` +
        (opts.caFile
          ? `it does not chain to the CA in CENTRAL_CA_FILE (${opts.caFile}); give the CA that signed Central's certificate`
          : "it does not chain to a CA this system trusts; set CENTRAL_CA_FILE to the CA that signed it (the Central stack's ca.pem)") +
        (certificate === 'ERR_TLS_CERT_ALTNAME_INVALID'
          ? ", or use the host name Central's certificate names"
          : ''),
      { cause: err },
    );
  if (cause?.code === 'UND_ERR_SOCKET' && new URL(baseUrl).protocol === 'http:')
    return new AppError(
      'CENTRAL_UNREACHABLE',
      `cannot reach Central at ${baseUrl}: the connection was closed without an answer, as a port ` +
        'that speaks HTTPS does to plain HTTP: if Central serves TLS there, use https:// in CENTRAL_URL',
      { cause: err },
    );
  return new AppError('CENTRAL_UNREACHABLE', `cannot reach Central at ${baseUrl}: ${why}`, { cause: err });
}

async function* watchStalls(
  body: ReadableStream<Uint8Array>,
  stallMs: number,
  deadlineAt: number,
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
                : new AppError('SNAPSHOT_INVALID', `no data from Central for ${stallMs} ms`),
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
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}
