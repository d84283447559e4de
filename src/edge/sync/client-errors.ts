/**
 * What went wrong between the edge and Central, as AppErrors with stable codes: a refusal
 * (4xx) is CENTRAL_REFUSED with Central's own code in `details.centralCode`; anything that
 * kept an answer away (network, timeout, 5xx, the circuit, a certificate) is
 * CENTRAL_UNREACHABLE, its message saying what to do.
 */
import { BrokenCircuitError, TaskCancelledError } from 'cockatiel';
import { AppError } from '../../platform/errors.ts';

export class HttpStatusError extends Error {
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

export const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);

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

export const isRetryable = (err: unknown): boolean =>
  err instanceof HttpStatusError
    ? RETRYABLE_STATUS.has(err.status)
    : !(err instanceof AppError) && certificateCode(err) === undefined;

/** What to do about a refusal, for the codes a misconfigured device gets. */
const REFUSAL_HINTS: Record<string, string> = {
  UNAUTHENTICATED: 'check DEVICE_TOKEN: it is the line `dbupdate central enroll --mac M` printed',
  DEVICE_NOT_FOUND: 'check DEVICE_MAC, or create the device in Central and enroll it',
  DEVICE_DISABLED: 'the device is disabled in Central',
  SCHEMA_VERSION_UNSUPPORTED: 'this edge and Central run data-model versions too far apart to sync',
  ROUTE_NOT_FOUND: 'check CENTRAL_URL: it is not a Central (or lacks its path prefix)',
};

/** Central's own code of a refusal (4xx), as it answered it; undefined for any other failure. */
export function centralCodeOf(err: unknown): string | undefined {
  if (!(err instanceof AppError) || err.code !== 'CENTRAL_REFUSED') return undefined;
  const code = err.details?.centralCode;
  return typeof code === 'string' ? code : undefined;
}

interface Where {
  baseUrl: string;
  /** Where the pinned CA was read from (CENTRAL_CA_FILE), for messages. */
  caFile?: string | undefined;
}

export function toClientError(err: unknown, where: Where, retryAt: number): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof HttpStatusError) return statusError(err);
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
  return networkError(err, where);
}

/**
 * How long until the circuit lets one call through, when `err` is the open circuit's refusal
 * (0 otherwise): a try before then never reaches Central.
 */
export function circuitWaitMs(err: unknown): number {
  if (!(err instanceof AppError) || !(err.cause instanceof BrokenCircuitError)) return 0;
  const seconds = err.details?.['retryAfterSeconds'];
  return typeof seconds === 'number' ? seconds * 1000 : 0;
}

function statusError(err: HttpStatusError): AppError {
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

function networkError(err: unknown, { baseUrl, caFile }: Where): AppError {
  // fetch says only "fetch failed"; the reason (refused, unknown host, certificate) is its cause.
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = [cause?.code, cause?.message].filter(Boolean).join(' ') || (err as Error).message;
  const certificate = certificateCode(err);
  if (certificate)
    return new AppError(
      'CENTRAL_UNREACHABLE',
      // Node's own advice (--use-system-ca) points away from CENTRAL_CA_FILE, the fix here.
      `Central's certificate at ${new URL(baseUrl).host} is not trusted (${certificate}: ${(cause?.message ?? '').replace(/; if the root CA is installed locally.*$/, '')}): ` +
        (caFile
          ? `it does not chain to the CA in CENTRAL_CA_FILE (${caFile}); give the CA that signed Central's certificate`
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
